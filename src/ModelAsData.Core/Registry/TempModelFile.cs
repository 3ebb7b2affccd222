using System.Security.Cryptography;

namespace ModelAsData.Core.Registry;

/// <summary>
/// A version's bytes written to a file of the temp folder so that ONNX Runtime loads it by its path
/// (<see cref="Onnx.OnnxModel.LoadFile"/>): a large model is then never held as a managed array while ONNX Runtime
/// parses it, which takes a load's peak from about three times the model to two. The file is created new (never an
/// existing file or link), readable by this user only, hashed as it is written, and deleted on dispose.
/// </summary>
public sealed class TempModelFile : IDisposable
{
    private readonly FileStream _stream;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    private TempModelFile(string path, FileStream stream)
    {
        Path = path;
        _stream = stream;
    }

    public string Path { get; }

    /// <summary>Bytes written so far.</summary>
    public long Length { get; private set; }

    public static TempModelFile Create()
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mad-model-{Guid.NewGuid():N}.onnx");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.Read, BufferSize = 0 };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new TempModelFile(path, new FileStream(path, options));
    }

    public async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        _hash.AppendData(bytes.Span);
        await _stream.WriteAsync(bytes, cancellationToken);
        Length += bytes.Length;
    }

    /// <summary>Closes the file for writing; returns the sha256 of what was written.</summary>
    public async Task<string> CompleteAsync()
    {
        await _stream.FlushAsync();
        await _stream.DisposeAsync();
        return Convert.ToHexStringLower(_hash.GetHashAndReset());
    }

    public void Dispose()
    {
        _stream.Dispose();
        _hash.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
            // Best effort: a temp file left behind is the temp folder's to clean.
        }
    }
}

using System.Security.Cryptography;

namespace ModelAsData.Core.Registry;

/// <summary>How both stores keep large versions: in chunks of this size, in order (docs/LARGE_MODELS.md).</summary>
public static class ModelChunks
{
    /// <summary>16 MiB: a chunk the database and this process each hold once at a time; larger versions are chunked.</summary>
    public const int DefaultBytes = 16 * 1024 * 1024;

    /// <summary>How many chunks of <paramref name="chunkBytes"/> hold <paramref name="size"/> bytes.</summary>
    public static int Count(long size, int chunkBytes) => (int)((size + chunkBytes - 1) / chunkBytes);

    /// <summary>A buffer for a whole version, refusing one larger than an array holds (ONNX's own limit is 2 GiB).</summary>
    public static byte[] Allocate(string model, int version, long size) => size > Array.MaxLength
        ? throw new ModelAsDataException(ErrorCode.InvalidModel,
            $"Model '{model}' v{version} is {size:N0} bytes; one process loads at most {Array.MaxLength:N0} (ONNX's own limit is 2 GiB).")
        : GC.AllocateUninitializedArray<byte>((int)size);

    /// <summary>
    /// Throws <see cref="ErrorCode.InvalidModel"/> unless <paramref name="bytes"/> are the <paramref name="size"/> bytes
    /// with the <paramref name="sha256"/> recorded at push: a version whose bytes were damaged is never loaded.
    /// </summary>
    public static void Verify(string model, int version, byte[] bytes, long size, string sha256)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (bytes.LongLength != size || actual != sha256)
        {
            throw Corrupt(model, version,
                $"its {bytes.LongLength:N0} stored bytes hash to sha256 {actual[..12]}…, but it was pushed as {size:N0} bytes with sha256 {sha256[..Math.Min(12, sha256.Length)]}…");
        }
    }

    /// <summary>The error for a version whose stored bytes are damaged, saying how.</summary>
    public static ModelAsDataException Corrupt(string model, int version, string how) =>
        new(ErrorCode.InvalidModel, $"Model '{model}' v{version} is corrupt: {how}; it is not loaded. Push the model again as a new version.");
}

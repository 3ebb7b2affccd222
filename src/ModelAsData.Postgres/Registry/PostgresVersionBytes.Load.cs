using System.Data;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using Npgsql;

namespace ModelAsData.Postgres.Registry;

/// <summary>
/// Loading a version into ONNX Runtime: a small version from its bytes, a chunked one (030) through a temporary file
/// ONNX Runtime reads by its path (<see cref="TempModelFile"/>), so the process never holds the whole model as a
/// managed array while ONNX Runtime parses it. Either way the sha256 over the whole is checked first.
/// </summary>
public static partial class PostgresVersionBytes
{
    private const string ChunkCount = "SELECT v.chunks, v.size_bytes, v.sha256 FROM mad.model_versions v WHERE v.model = $1 AND v.version = $2";

    /// <summary>
    /// The loaded version, from <paramref name="cache"/> when it has <paramref name="sha256"/> (nothing is read), else
    /// read, checked, loaded and kept there. Throws <see cref="ErrorCode.NotFound"/> when there is no such version.
    /// </summary>
    public static async Task<OnnxModel> LoadAsync(NpgsqlConnection connection, string model, int version, string sha256, ModelCache cache, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (cache.Contains(sha256))
        {
            return cache.GetOrLoad(sha256, () => throw new InvalidOperationException($"Model {model}@{version} was dropped from the cache while it was used."));
        }

        using var file = await ReadToFileAsync(connection, model, version, cancellationToken);
        if (file is null)
        {
            var bytes = await ReadAsync(connection, model, version, cancellationToken) ?? throw NotFound(model, version);
            return cache.GetOrLoad(sha256, () => bytes);
        }

        return cache.GetOrCreate(sha256, () => OnnxModel.LoadFile(file.Path, cache.Options, sha256));
    }

    /// <summary>As <see cref="LoadAsync(NpgsqlConnection, string, int, string, ModelCache, CancellationToken)"/>, without a cache: the caller owns the model.</summary>
    public static async Task<OnnxModel> LoadAsync(NpgsqlConnection connection, string model, int version, ScoringOptions options, CancellationToken cancellationToken = default)
    {
        using var file = await ReadToFileAsync(connection, model, version, cancellationToken);
        if (file is null)
        {
            return OnnxModel.Load(await ReadAsync(connection, model, version, cancellationToken) ?? throw NotFound(model, version), options);
        }

        return OnnxModel.LoadFile(file.Path, options);
    }

    /// <summary>
    /// A chunked version written to a temporary file, checked against its size and sha256; null for a version kept
    /// whole (read it with <see cref="ReadAsync"/>) or no such version. The caller disposes the file (deleting it).
    /// </summary>
    public static async Task<TempModelFile?> ReadToFileAsync(NpgsqlConnection connection, string model, int version, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        int chunks;
        long size;
        string sha256;
        await using (var header = new NpgsqlCommand(ChunkCount, connection) { Parameters = { new() { Value = model }, new() { Value = version } } })
        await using (var row = await header.ExecuteReaderAsync(cancellationToken))
        {
            if (!await row.ReadAsync(cancellationToken) || row.GetInt32(0) == 0)
            {
                return null;
            }

            (chunks, size, sha256) = (row.GetInt32(0), row.GetInt64(1), row.GetString(2));
        }

        var file = TempModelFile.Create();
        try
        {
            await CopyChunksAsync(connection, model, version, size, chunks, file, cancellationToken);
            var written = await file.CompleteAsync();
            if (written != sha256)
            {
                throw ModelChunks.Corrupt(model, version, $"its bytes have sha256 {written}, not the {sha256} recorded when it was pushed");
            }

            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static Task CopyChunksAsync(NpgsqlConnection connection, string model, int version, long size, int chunks, TempModelFile file, CancellationToken cancellationToken)
    {
        var buffer = new byte[1024 * 1024];
        return ForEachChunkAsync(connection, model, version, size, chunks, async (chunk, _, ct) =>
        {
            int read;
            while ((read = await chunk.ReadAsync(buffer, ct)) > 0)
            {
                await file.WriteAsync(buffer.AsMemory(0, read), ct);
            }
        }, cancellationToken);
    }

    private static ModelAsDataException NotFound(string model, int version) =>
        new(ErrorCode.NotFound, $"Model '{model}' has no version {version}.");
}

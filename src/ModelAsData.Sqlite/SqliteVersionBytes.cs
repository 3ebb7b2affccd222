using System.Security.Cryptography;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// A version's bytes in the embedded store (017): in <c>mad_model_versions.onnx</c> for small versions, else in
/// <c>mad_model_chunks</c>, written and read with incremental BLOB I/O (<see cref="SqliteBlob"/>) straight from and
/// into one array of the version's size. Loads check the sha256 over the whole. Pulls from PostgreSQL write through
/// here too, so a device holds versions of any size.
/// </summary>
public static class SqliteVersionBytes
{
    private const string Header = "SELECT size_bytes AS Size, sha256 AS Sha256, chunks AS Chunks, onnx AS Onnx FROM mad_model_versions WHERE model = @model AND version = @version";

    private const string ChunkRows = "SELECT rowid AS RowId, n AS N, length(bytes) AS Length FROM mad_model_chunks WHERE model = @model AND version = @version ORDER BY n";

    private const string InsertChunk = "INSERT INTO mad_model_chunks (model, version, n, bytes) VALUES (@model, @version, @n, zeroblob(@length)) RETURNING rowid";

    /// <summary>How many chunks a version of <paramref name="size"/> bytes is stored in: 0 when it fits one chunk (kept in onnx).</summary>
    public static int ChunksFor(long size, int chunkBytes = ModelChunks.DefaultBytes) => size <= chunkBytes ? 0 : ModelChunks.Count(size, chunkBytes);

    /// <summary>
    /// Writes the chunks of a version whose row says <c>chunks</c> = <see cref="ChunksFor"/>(bytes) &gt; 0 (its onnx the
    /// empty BLOB), in the caller's transaction.
    /// </summary>
    public static async Task WriteChunksAsync(SqliteConnection connection, SqliteTransaction transaction, string model, long version, byte[] bytes,
        int chunkBytes = ModelChunks.DefaultBytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        for (var n = 0; (long)n * chunkBytes < bytes.LongLength; n++)
        {
            var offset = n * chunkBytes;
            var length = (int)Math.Min(chunkBytes, bytes.LongLength - offset);
            var rowId = await connection.ExecuteScalarAsync<long>(new CommandDefinition(InsertChunk, new { model, version, n, length }, transaction, cancellationToken: cancellationToken));
            using var blob = new SqliteBlob(connection, "mad_model_chunks", "bytes", rowId);
            blob.Write(bytes, offset, length);
        }
    }

    /// <summary>
    /// As <see cref="WriteChunksAsync(SqliteConnection, SqliteTransaction, string, long, byte[], int, CancellationToken)"/>,
    /// from <paramref name="length"/> bytes of a stream, through a small buffer; returns the sha256 of what it wrote.
    /// </summary>
    public static async Task<string> WriteChunksAsync(SqliteConnection connection, SqliteTransaction transaction, string model, long version, Stream source, long length,
        int chunkBytes = ModelChunks.DefaultBytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1024 * 1024];
        for (var n = 0; (long)n * chunkBytes < length; n++)
        {
            var chunk = (int)Math.Min(chunkBytes, length - ((long)n * chunkBytes));
            var rowId = await connection.ExecuteScalarAsync<long>(new CommandDefinition(InsertChunk, new { model, version, n, length = chunk }, transaction, cancellationToken: cancellationToken));
            using var blob = new SqliteBlob(connection, "mad_model_chunks", "bytes", rowId);
            for (var done = 0; done < chunk;)
            {
                var read = await source.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, chunk - done)), cancellationToken);
                if (read == 0)
                {
                    throw new EndOfStreamException($"The model ended after {((long)n * chunkBytes) + done:N0} of its {length:N0} bytes while it was stored; nothing was stored.");
                }

                hash.AppendData(buffer, 0, read);
                blob.Write(buffer, 0, read);
                done += read;
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The version's bytes, checked; null when there is no such version.</summary>
    public static async Task<byte[]?> ReadAsync(SqliteConnection connection, SqliteTransaction? transaction, string model, int version, CancellationToken cancellationToken = default)
    {
        var header = await connection.QuerySingleOrDefaultAsync<HeaderRow>(new CommandDefinition(Header, new { model, version }, transaction, cancellationToken: cancellationToken));
        if (header is null)
        {
            return null;
        }

        var bytes = header.Chunks == 0 ? header.Onnx : await ReadChunksAsync(connection, transaction, model, version, header, cancellationToken);
        ModelChunks.Verify(model, version, bytes, header.Size, header.Sha256);
        return bytes;
    }

    /// <summary>
    /// A chunked version copied into a temporary file, checked against its size and sha256, for ONNX Runtime to load
    /// by its path; null for a version kept whole (or no such version). The caller disposes the file (deleting it).
    /// </summary>
    public static async Task<TempModelFile?> ReadToFileAsync(SqliteConnection connection, SqliteTransaction? transaction, string model, int version, CancellationToken cancellationToken = default)
    {
        var header = await connection.QuerySingleOrDefaultAsync<HeaderRow>(new CommandDefinition(Header, new { model, version }, transaction, cancellationToken: cancellationToken));
        if (header is null || header.Chunks == 0)
        {
            return null;
        }

        var file = TempModelFile.Create();
        try
        {
            var buffer = new byte[1024 * 1024];
            var next = 0;
            foreach (var row in await connection.QueryAsync<ChunkRow>(new CommandDefinition(ChunkRows, new { model, version }, transaction, cancellationToken: cancellationToken)))
            {
                if (row.N != next || row.Length > header.Size - file.Length)
                {
                    throw ModelChunks.Corrupt(model, version, row.N != next ? $"chunk {next} of {header.Chunks} is missing" : $"chunk {row.N} ends past its {header.Size:N0} bytes");
                }

                using var blob = new SqliteBlob(connection, "mad_model_chunks", "bytes", row.RowId, readOnly: true);
                int read;
                while ((read = await blob.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }

                next++;
            }

            if (next != header.Chunks || file.Length != header.Size)
            {
                throw ModelChunks.Corrupt(model, version, $"it was stored in {header.Chunks} chunks of {header.Size:N0} bytes, but {next} chunks of {file.Length:N0} bytes were found");
            }

            var written = await file.CompleteAsync();
            if (written != header.Sha256)
            {
                throw ModelChunks.Corrupt(model, version, $"its bytes have sha256 {written}, not the {header.Sha256} recorded when it was pushed");
            }

            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static async Task<byte[]> ReadChunksAsync(SqliteConnection connection, SqliteTransaction? transaction, string model, int version, HeaderRow header, CancellationToken cancellationToken)
    {
        var bytes = ModelChunks.Allocate(model, version, header.Size);
        var rows = await connection.QueryAsync<ChunkRow>(new CommandDefinition(ChunkRows, new { model, version }, transaction, cancellationToken: cancellationToken));
        long offset = 0;
        var next = 0;
        foreach (var row in rows)
        {
            if (row.N != next || row.Length > header.Size - offset)
            {
                throw ModelChunks.Corrupt(model, version, row.N != next ? $"chunk {next} of {header.Chunks} is missing" : $"chunk {row.N} ends past its {header.Size:N0} bytes");
            }

            using var blob = new SqliteBlob(connection, "mad_model_chunks", "bytes", row.RowId, readOnly: true);
            blob.ReadExactly(bytes, (int)offset, (int)row.Length);
            offset += row.Length;
            next++;
        }

        if (next != header.Chunks || offset != header.Size)
        {
            throw ModelChunks.Corrupt(model, version, $"it was stored in {header.Chunks} chunks of {header.Size:N0} bytes, but {next} chunks of {offset:N0} bytes were found");
        }

        return bytes;
    }

    private sealed class HeaderRow
    {
        public long Size { get; init; }

        public string Sha256 { get; init; } = "";

        public long Chunks { get; init; }

        public byte[] Onnx { get; init; } = [];
    }

    private sealed class ChunkRow
    {
        public long RowId { get; init; }

        public long N { get; init; }

        public long Length { get; init; }
    }
}

using System.Data;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using Npgsql;

namespace ModelAsData.Postgres.Registry;

/// <summary>
/// Reads a version's ONNX bytes wherever they are stored (030): in <c>mad.model_versions.onnx</c> for small
/// versions, else chunk by chunk from <c>mad.model_chunks</c> into one array of the version's size, so a large model
/// is held once in this process and never whole in the server's memory. Either way the sha256 over the whole is
/// checked against the one recorded at push: a corrupt or missing chunk throws <see cref="ErrorCode.InvalidModel"/>
/// and nothing is loaded. Runs on the caller's connection (and transaction), as the role it is: readers of the bytes
/// are mad_admin and mad_sidecar.
/// </summary>
public static partial class PostgresVersionBytes
{
    private const string Header = "SELECT v.size_bytes, v.sha256, v.chunks, v.onnx FROM mad.model_versions v WHERE v.model = $1 AND v.version = $2";

    private const string Chunks = "SELECT c.n, c.bytes FROM mad.model_chunks c WHERE c.model = $1 AND c.version = $2 ORDER BY c.n";

    /// <summary>The version's bytes, checked; null when there is no such version.</summary>
    public static async Task<byte[]?> ReadAsync(NpgsqlConnection connection, string model, int version, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        long size;
        string sha256;
        int chunks;
        byte[]? bytes = null;
        await using (var header = new NpgsqlCommand(Header, connection) { Parameters = { new() { Value = model }, new() { Value = version } } })
        await using (var row = await header.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken))
        {
            if (!await row.ReadAsync(cancellationToken))
            {
                return null;
            }

            (size, sha256, chunks) = (row.GetInt64(0), row.GetString(1), row.GetInt32(2));
            if (!await row.IsDBNullAsync(3, cancellationToken))
            {
                bytes = await row.GetFieldValueAsync<byte[]>(3, cancellationToken);
            }
        }

        bytes ??= await ReadChunksAsync(connection, model, version, size, chunks, cancellationToken);
        ModelChunks.Verify(model, version, bytes, size, sha256);
        return bytes;
    }

    private static async Task<byte[]> ReadChunksAsync(NpgsqlConnection connection, string model, int version, long size, int chunks, CancellationToken cancellationToken)
    {
        var bytes = ModelChunks.Allocate(model, version, size);
        await ForEachChunkAsync(connection, model, version, size, chunks,
            (chunk, offset, ct) => chunk.ReadExactlyAsync(bytes.AsMemory((int)offset, (int)chunk.Length), ct), cancellationToken);
        return bytes;
    }

    /// <summary>
    /// Hands each chunk of a chunked version, in order, to <paramref name="consume"/> with the offset it starts at, and
    /// throws <see cref="ErrorCode.InvalidModel"/> for a missing chunk, one that ends past the version's size, or
    /// chunks that do not add up to it. The one walk over mad.model_chunks that reading and loading share.
    /// </summary>
    private static async Task ForEachChunkAsync(NpgsqlConnection connection, string model, int version, long size, int chunks,
        Func<Stream, long, CancellationToken, ValueTask> consume, CancellationToken cancellationToken)
    {
        long offset = 0;
        var next = 0;
        await using var command = new NpgsqlCommand(Chunks, connection) { Parameters = { new() { Value = model }, new() { Value = version } } };
        await using (var rows = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken))
        {
            while (await rows.ReadAsync(cancellationToken))
            {
                var n = rows.GetInt32(0);
                if (n != next)
                {
                    throw Missing(model, version, chunks, $"chunk {next} is missing");
                }

                await using var chunk = await rows.GetStreamAsync(1, cancellationToken);
                if (chunk.Length > size - offset)
                {
                    throw Missing(model, version, chunks, $"chunk {n} ends past the version's {size:N0} bytes");
                }

                await consume(chunk, offset, cancellationToken);
                offset += chunk.Length;
                next++;
            }
        }

        if (next != chunks || offset != size)
        {
            throw Missing(model, version, chunks, $"{next} chunks of {offset:N0} bytes were found for {size:N0} bytes");
        }
    }

    private static ModelAsDataException Missing(string model, int version, int chunks, string what) =>
        ModelChunks.Corrupt(model, version, $"it was pushed in {chunks} chunks, but {what}");
}

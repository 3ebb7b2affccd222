using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Dapper;
using ModelAsData.Core.Registry;
using Npgsql;

namespace ModelAsData.Postgres.Registry;

public sealed partial class PostgresModelRegistry
{
    /// <summary>
    /// Versions larger than this many bytes are pushed in chunks of this size (<see cref="PostgresVersionBytes"/>);
    /// smaller ones go whole through <c>mad.push_model</c>. Default 16 MiB.
    /// </summary>
    public int ChunkBytes { get; init; } = ModelChunks.DefaultBytes;

    public async Task<ModelVersion> PushAsync(string model, byte[] onnx, JsonObject metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        await using var stream = new MemoryStream(onnx, writable: false);
        return await PushAsync(model, stream, metadata, cancellationToken);
    }

    /// <summary>
    /// Stores the bytes of <paramref name="onnx"/> (a stream with a length, read from its position to its end) as a new
    /// pending version. A version of more than <see cref="ChunkBytes"/> is streamed in chunks, its sha256 computed as
    /// they are read, all in one transaction: this process holds one chunk at a time, and a push that fails or is
    /// killed half way leaves nothing.
    /// </summary>
    public Task<ModelVersion> PushAsync(string model, Stream onnx, JsonObject metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        var size = onnx.Length - onnx.Position;
        var json = (metadata ?? []).ToJsonString();
        return RunAsync(async connection =>
        {
            int version;
            if (size <= ChunkBytes)
            {
                var whole = new byte[size];
                await onnx.ReadExactlyAsync(whole, cancellationToken);
                version = await connection.ExecuteScalarAsync<int>(Command(RegistrySql.Push, new { model, onnx = whole, metadata = json }, cancellationToken));
            }
            else
            {
                version = await PushChunksAsync(connection, model, onnx, size, json, cancellationToken);
            }

            return await ReadVersionAsync(connection, model, version, cancellationToken);
        }, cancellationToken);
    }

    private async Task<int> PushChunksAsync(NpgsqlConnection connection, string model, Stream onnx, long size, string metadata, CancellationToken cancellationToken)
    {
        var chunks = ModelChunks.Count(size, ChunkBytes);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var version = await connection.ExecuteScalarAsync<int>(Command(RegistrySql.BeginPush, new { model, size, chunks, metadata }, cancellationToken, transaction));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = GC.AllocateUninitializedArray<byte>(ChunkBytes);
        var n = new NpgsqlParameter<int>("n", 0);
        var bytes = new NpgsqlParameter<ReadOnlyMemory<byte>>("bytes", NpgsqlTypes.NpgsqlDbType.Bytea);
        await using var push = new NpgsqlCommand(RegistrySql.PushChunk, connection, transaction)
        {
            Parameters = { new NpgsqlParameter<string>("model", model), new NpgsqlParameter<int>("version", version), n, bytes },
        };
        for (var i = 0; i < chunks; i++)
        {
            var length = (int)Math.Min(ChunkBytes, size - ((long)i * ChunkBytes));
            await onnx.ReadExactlyAsync(buffer.AsMemory(0, length), cancellationToken);
            hash.AppendData(buffer, 0, length);
            n.TypedValue = i;
            bytes.TypedValue = buffer.AsMemory(0, length);
            await push.ExecuteNonQueryAsync(cancellationToken);
        }

        var sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
        await connection.ExecuteScalarAsync<int>(Command(RegistrySql.FinishPush, new { model, version, sha256 }, cancellationToken, transaction));
        await transaction.CommitAsync(cancellationToken);
        return version;
    }
}

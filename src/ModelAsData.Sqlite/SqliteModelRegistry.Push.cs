using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// Pushing a version into the embedded store: validated by ONNX Runtime before anything is stored (in-process, or a
/// large file by <see cref="FileValidator"/> when one is set), then written in one transaction (its chunks too, 017).
/// </summary>
public sealed partial class SqliteModelRegistry
{
    /// <summary>A file pushed from its path stays loaded below this size (64 MiB, where a load counts as large).</summary>
    private const long KeepLoadedBytes = 64L * 1024 * 1024;

    /// <summary>
    /// Where a file larger than one chunk is validated. Null (the default, the library used from C#): in this
    /// process. The CLI sets a child process of itself (<c>mad models validate</c>), so that ONNX Runtime's peak of
    /// about twice the model is not the pushing process's, as on PostgreSQL where the sidecar validates.
    /// </summary>
    public IModelFileValidator? FileValidator { get; set; }

    /// <summary>
    /// Pushes from a stream. A file larger than one chunk (the CLI's <c>mad models push</c>) is never held whole here:
    /// ONNX Runtime validates it from its path, then it is copied into its chunks straight from the file. Any other
    /// stream is read into memory and pushed as bytes.
    /// </summary>
    public async Task<ModelVersion> PushAsync(string model, Stream onnx, JsonObject metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        Names.Validate(model, "model");
        if (onnx is FileStream { CanSeek: true, Position: 0 } file && file.Length > ChunkBytes)
        {
            return await PushFileAsync(model, file, metadata, cancellationToken);
        }

        var bytes = ModelChunks.Allocate(model, 0, onnx.Length - onnx.Position);
        await onnx.ReadExactlyAsync(bytes, cancellationToken);
        return await PushAsync(model, bytes, metadata, cancellationToken);
    }

    public async Task<ModelVersion> PushAsync(string model, byte[] onnx, JsonObject metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        Names.Validate(model, "model");
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(onnx));
        var signature = _cache.GetOrLoad(sha256, () => onnx).Signature; // Throws ONNX Runtime's reason; nothing is stored.
        var chunks = SqliteVersionBytes.ChunksFor(onnx.LongLength, ChunkBytes);
        using var transaction = Connection.BeginTransaction(deferred: false);
        var version = await InsertVersionAsync(model, chunks == 0 ? onnx : [], chunks, sha256, onnx.LongLength, signature, metadata, transaction, cancellationToken);
        if (chunks > 0)
        {
            await SqliteVersionBytes.WriteChunksAsync(Connection, transaction, model, version, onnx, ChunkBytes, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return await GetVersionAsync(model, (int)version, cancellationToken);
    }

    /// <summary>
    /// Validates the file by its path, then copies it into its chunks. Validated here, the process holds what ONNX
    /// Runtime needs to load it once (about twice its size at the peak, none after: a large model is not kept
    /// loaded); by <see cref="FileValidator"/>, none of it. Either way a small buffer, never a copy of the file. The file is hashed before it is validated and again as it is copied: a file
    /// that changed in between is refused, and nothing is stored.
    /// </summary>
    private async Task<ModelVersion> PushFileAsync(string model, FileStream file, JsonObject metadata, CancellationToken cancellationToken)
    {
        var length = file.Length;
        var sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(file, cancellationToken));
        file.Position = 0;
        var signature = FileValidator is { } validator && !_cache.Contains(sha256)
            ? await validator.ValidateAsync(file.Name, sha256, cancellationToken)
            : ValidateFile(file.Name, sha256);
        var chunks = SqliteVersionBytes.ChunksFor(length, ChunkBytes);
        using var transaction = Connection.BeginTransaction(deferred: false);
        var version = await InsertVersionAsync(model, [], chunks, sha256, length, signature, metadata, transaction, cancellationToken);
        var written = await SqliteVersionBytes.WriteChunksAsync(Connection, transaction, model, version, file, length, ChunkBytes, cancellationToken);
        if (written != sha256)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel,
                $"{file.Name} changed while it was pushed (sha256 {sha256[..12]}… when validated, {written[..12]}… when stored); nothing was stored. Push it again once nothing writes to it.");
        }

        await transaction.CommitAsync(cancellationToken);
        return await GetVersionAsync(model, (int)version, cancellationToken);
    }

    /// <summary>
    /// Loads the file in ONNX Runtime by its path (throws its reason) and returns the signature. A model under
    /// <see cref="KeepLoadedBytes"/> stays in the cache for the scoring that follows, as pushed bytes do;
    /// a larger one is unloaded at once, so pushing it does not keep its weights in the pushing process.
    /// </summary>
    private ModelSignature ValidateFile(string path, string sha256)
    {
        if (new FileInfo(path).Length < KeepLoadedBytes)
        {
            return _cache.GetOrCreate(sha256, () => OnnxModel.LoadFile(path, _cache.Options, sha256)).Signature;
        }

        if (_cache.Contains(sha256))
        {
            return _cache.GetOrLoad(sha256, () => []).Signature;
        }

        using var loaded = OnnxModel.LoadFile(path, _cache.Options, sha256);
        return loaded.Signature;
    }

    private async Task<long> InsertVersionAsync(string model, byte[] onnx, int chunks, string sha256, long size, ModelSignature signature, JsonObject metadata,
        SqliteTransaction transaction, CancellationToken cancellationToken)
    {
        var now = SqliteTime.Now();
        var version = await Connection.ExecuteScalarAsync<long>(Command(SqliteRegistrySql.NextVersion, new { model, by = Environment.UserName, at = now }, transaction, cancellationToken));
        await Execute(SqliteRegistrySql.InsertVersion, new
        {
            model,
            version,
            onnx,
            chunks,
            sha256,
            size,
            status = "ready",
            reason = (string?)null,
            signature = signature.ToJson(),
            metadata = metadata.ToJsonString(),
            by = Environment.UserName,
            at = now,
        }, transaction, cancellationToken);
        return version;
    }
}

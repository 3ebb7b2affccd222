using System.Text.Json.Nodes;

namespace ModelAsData.Core.Registry;

/// <summary>
/// The model registry of one database: models, their immutable versions (ONNX bytes, sha256, signature, metadata)
/// and movable aliases with their history. One implementation per store (SQLite, PostgreSQL); the CLI and the
/// scoring code see only this. Implementations are safe to use from one thread at a time.
/// </summary>
public interface IModelRegistry : IAsyncDisposable
{
    /// <summary>"sqlite" or "postgres", for messages.</summary>
    string Kind { get; }

    /// <summary>Creates or upgrades the registry's schema; idempotent.</summary>
    Task MigrateAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores a new version. A store that validates in-process returns it <c>ready</c> or throws for a model ONNX
    /// Runtime refuses (nothing stored); a store validated by a sidecar returns it <c>pending</c>.
    /// </summary>
    Task<ModelVersion> PushAsync(string model, byte[] onnx, JsonObject metadata, CancellationToken cancellationToken = default);

    /// <summary>
    /// As the overload that takes bytes, for a model read from <paramref name="onnx"/> (a stream with a length, from
    /// its position to its end, e.g. a file): stored in chunks as it is read, so a model of any size up to 2 GB is
    /// never whole in this process on the way to the database, and a push that fails half way stores nothing.
    /// </summary>
    Task<ModelVersion> PushAsync(string model, Stream onnx, JsonObject metadata, CancellationToken cancellationToken = default);

    /// <summary>
    /// Waits until a version is validated and returns it <c>ready</c> or <c>rejected</c>. A store that validates as it
    /// pushes returns at once; one validated by a sidecar throws <see cref="ErrorCode.Timeout"/> after
    /// <paramref name="timeout"/>, saying whether any sidecar runs.
    /// </summary>
    Task<ModelVersion> WaitForValidationAsync(string model, int version, TimeSpan timeout, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<ModelSummary>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// The version a reference means: <c>name@7</c>; <c>name@alias</c>; bare <c>name</c> is <c>name@production</c> when
    /// that alias exists, else the newest ready version. A missing model, version or alias throws
    /// <see cref="ErrorCode.NotFound"/> naming what exists.
    /// </summary>
    Task<ModelVersion> ResolveAsync(ModelReference reference, CancellationToken cancellationToken = default);

    /// <summary>The ONNX bytes of a version.</summary>
    Task<byte[]> LoadBytesAsync(string model, int version, CancellationToken cancellationToken = default);

    /// <summary>Every alias of a model with the version it points at.</summary>
    Task<IReadOnlyDictionary<string, int>> AliasesAsync(string model, CancellationToken cancellationToken = default);

    /// <summary>Points an alias at a ready version, recording the move; creates the alias if needed.</summary>
    Task<AliasMove> SetAliasAsync(string model, string alias, int version, string? reason = null, CancellationToken cancellationToken = default);

    /// <summary>Points an alias back at the version it pointed at before its last move.</summary>
    Task<AliasMove> RollbackAliasAsync(string model, string alias, CancellationToken cancellationToken = default);

    /// <summary>The alias's history, newest first.</summary>
    Task<IReadOnlyList<AliasMove>> AliasHistoryAsync(string model, string alias, CancellationToken cancellationToken = default);

    /// <summary>The version an alias pointed at, at a moment in the past; null when it did not exist then.</summary>
    Task<int?> AliasAtAsync(string model, string alias, DateTimeOffset at, CancellationToken cancellationToken = default);
}

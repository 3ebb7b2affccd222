using System.Text.Json.Nodes;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>
/// One store as the rule suites (<see cref="ResolutionContractTests"/>, <see cref="FeatureMappingContractTests"/>)
/// see it: an empty registry for each test (their messages list everything that exists, so both stores must hold the
/// same), its prediction tables, and the few arrangements the public interfaces cannot make (a version left pending or
/// marked rejected, a source table). Source DDL is written once, in SQL both dialects accept.
/// </summary>
public abstract class RulesStore : IAsyncDisposable
{
    public IModelRegistry Registry { get; protected set; } = null!;

    public IPredictionTables Tables { get; protected set; } = null!;

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Opens the store with no models, no prediction tables and none of the suites' source tables.</summary>
    public abstract Task OpenEmptyAsync();

    /// <summary>Pushes <paramref name="onnx"/> and returns the version once the store has validated it.</summary>
    public abstract Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null);

    /// <summary>Pushes a version that stays pending (no validator has seen it). Push ready versions first: PostgreSQL validates every pending one.</summary>
    public abstract Task<int> PushPendingAsync(string model, byte[] onnx);

    /// <summary>Marks a version rejected, as a validator that could not load it would.</summary>
    public abstract Task RejectAsync(string model, int version, string reason);

    /// <summary>Runs DDL or DML on the store's database (source tables).</summary>
    public abstract Task ExecuteAsync(string sql);

    /// <summary>
    /// How messages name a source table: the one part of a message that differs by store, since PostgreSQL's
    /// functions render a regclass under their own search_path (public.flowers) and SQLite has no schemas (flowers).
    /// </summary>
    public abstract string Relation(string table);

    public abstract ValueTask DisposeAsync();
}

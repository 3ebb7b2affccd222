using Microsoft.Data.Sqlite;
using ModelAsData.Core.Deployments;
using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Deployments;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Postgres.Monitoring;
using ModelAsData.Postgres.Registry;
using ModelAsData.Postgres.Streaming;
using ModelAsData.Sqlite;

namespace ModelAsData.Cli;

/// <summary>
/// The store a <c>--db</c> value names, behind the interfaces the verbs use, so that each verb is written once for
/// SQLite and PostgreSQL. Every capability is there on every store; one a store lacks says so when called
/// (<see cref="IRefreshJobs.IsSupported"/>, <see cref="IStreaming.IsSupported"/>). Owns what it opened.
/// </summary>
public sealed class MadStore : IAsyncDisposable
{
    private MadStore(IModelRegistry registry, IPredictionTables tables, IRefreshJobs jobs, IStreaming streaming, IDeployments deployments, SqliteConnection? sqlite,
        IMonitoring monitoring, IOutcomeReports outcomes)
    {
        Outcomes = outcomes;
        Deployments = deployments;
        Monitoring = monitoring;
        Registry = registry;
        Tables = tables;
        Jobs = jobs;
        Streaming = streaming;
        Sqlite = sqlite;
    }

    public IModelRegistry Registry { get; }

    public IPredictionTables Tables { get; }

    public IRefreshJobs Jobs { get; }

    public IStreaming Streaming { get; }

    public IDeployments Deployments { get; }

    /// <summary>Baselines and drift (issue 16).</summary>
    public IMonitoring Monitoring { get; }

    /// <summary>Performance and champion-against-canary on outcomes (issue 17).</summary>
    public IOutcomeReports Outcomes { get; }

    /// <summary>The embedded store's connection, with <c>predict()</c> registered; null on PostgreSQL.</summary>
    public SqliteConnection? Sqlite { get; }

    public static ModelCache Cache => ModelCache.Shared;

    /// <summary>A connection string (<c>Host=…</c>, <c>postgres://…</c>) opens PostgreSQL; anything else is a SQLite file path.</summary>
    public static bool IsPostgres(string db) =>
        db.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || db.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase) || db.Contains('=', StringComparison.Ordinal);

    public static async Task<MadStore> OpenAsync(string db, CancellationToken cancellationToken)
    {
        if (IsPostgres(db))
        {
            return await OpenPostgresAsync(db, cancellationToken);
        }

        var registry = await SqliteModelRegistry.OpenAsync(db, cancellationToken);
        registry.FileValidator = ChildValidation.Find(); // a large push validates in a child process (null: there is none to start; in-process)
        SqlitePredictFunctions.Register(registry.Connection, Cache);
        return new MadStore(registry, new SqlitePredictionTables(registry, Cache), new SqliteRefreshJobs(), new SqliteStreaming(), new SqliteDeployments(registry),
            registry.Connection, new SqliteMonitoring(registry, Cache), new SqliteOutcomeReports(registry));
    }

    public ValueTask DisposeAsync() => Registry.DisposeAsync();

    private static async Task<MadStore> OpenPostgresAsync(string db, CancellationToken cancellationToken)
    {
        var registry = await PostgresModelRegistry.OpenAsync(db, cancellationToken);
        var tables = new PostgresPredictionTables(registry);
        return new(registry, tables, tables, new PostgresStreaming(registry), new PostgresDeployments(registry), sqlite: null, new PostgresMonitoring(registry, Cache),
            new PostgresOutcomeReports(registry.DataSource));
    }
}

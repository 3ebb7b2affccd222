using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Postgres.Registry;
using ModelAsData.Sqlite;

namespace ModelAsData.Cli;

/// <summary>
/// The store a <c>--db</c> value names, behind the interfaces the verbs use, so that each verb is written once for
/// SQLite and PostgreSQL. Owns what it opened.
/// </summary>
public sealed class MadStore : IAsyncDisposable
{
    private MadStore(IModelRegistry registry, IPredictionTables? tables, SqliteConnection? sqlite)
    {
        Registry = registry;
        Tables = tables;
        Sqlite = sqlite;
    }

    public IModelRegistry Registry { get; }

    /// <summary>Null where the store has no prediction tables yet.</summary>
    public IPredictionTables? Tables { get; }

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
        SqlitePredictFunctions.Register(registry.Connection, Cache);
        return new MadStore(registry, new SqlitePredictionTables(registry, Cache), registry.Connection);
    }

    /// <summary>The prediction tables, or a message that says this store has none yet.</summary>
    public IPredictionTables RequireTables() => Tables
        ?? throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Prediction tables are not available on {Registry.Kind} yet.");

    public ValueTask DisposeAsync() => Registry.DisposeAsync();

    private static async Task<MadStore> OpenPostgresAsync(string db, CancellationToken cancellationToken)
    {
        var registry = await PostgresModelRegistry.OpenAsync(db, cancellationToken);
        return new(registry, new PostgresPredictionTables(registry), sqlite: null);
    }
}

using System.Globalization;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core.Registry;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Sqlite;
using ModelAsData.Sync;
using Npgsql;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// A SQLite file holding what a PostgreSQL outcome test set up: the same model name (two iris versions, production on
/// 1, the same canary), a prediction table of the same name with its outcomes bound to a source of the same name, and
/// the same served history and labels copied row by row. Both stores then grade the same rows.
/// </summary>
internal sealed class SqliteTwin : IAsyncDisposable
{
    private SqliteTwin(string path, SqliteModelRegistry registry) => (Path, Registry) = (path, registry);

    public string Path { get; }

    public SqliteModelRegistry Registry { get; }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <param name="deployedAt">When to record the deployment as made (its alias's and deployment's history), as
    /// <see cref="CompareTests.DeployedAsync"/> records PostgreSQL's.</param>
    public static async Task<SqliteTwin> CreateAsync(string model, (int Version, double Percent)? canary = null, DateTimeOffset? deployedAt = null)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mad-twin-{Guid.NewGuid():N}.db");
        var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
        var iris = await File.ReadAllBytesAsync(System.IO.Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx"), Ct);
        await registry.PushAsync(model, iris, [], Ct);
        await registry.PushAsync(model, iris, [], Ct);
        var deployments = new SqliteDeployments(registry);
        await deployments.DeployAsync(model, "production", 1, cancellationToken: Ct);
        if (canary is { } c)
        {
            await deployments.DeployCanaryAsync(model, "production", c.Version, c.Percent, cancellationToken: Ct);
        }

        if (deployedAt is { } at)
        {
            var text = at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);
            await registry.Connection.ExecuteAsync("UPDATE mad_alias_history SET moved_at = @text WHERE model = @model; UPDATE mad_deployment_history SET changed_at = @text WHERE model = @model",
                new { text, model });
        }

        await registry.Connection.ExecuteAsync("CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL)");
        return new SqliteTwin(path, registry);
    }

    /// <summary>Table <paramref name="name"/> (of <paramref name="model"/>) bound to <paramref name="outcomes"/>, with PostgreSQL's history and labels.</summary>
    public async Task CopyAsync(NpgsqlDataSource pg, string name, string outcomes, string model)
    {
        await new SqlitePredictionTables(Registry).CreateAsync(new PredictionTableSpec(name, "flowers", ["id"], model, Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
        await Registry.Connection.ExecuteAsync($"CREATE TABLE {outcomes} (id INTEGER, label ANY, observed_at TEXT) STRICT");
        await DeviceOutcomes.SetAsync(Registry.Connection, new OutcomeBinding(name, outcomes, ["id"], "label", "observed_at"), Ct);
        var served = await pg.QueryAsync<(string Key, int Version, string Arm, string Outputs, DateTime ScoredAt)>(
            $"SELECT key, version, arm, outputs::text, scored_at FROM mad_history.{name}");
        var labels = await pg.QueryAsync<(long? Id, object? Label, DateTime? ObservedAt)>($"SELECT id, label, observed_at FROM public.{outcomes}");
        using var transaction = Registry.Connection.BeginTransaction();
        foreach (var s in served)
        {
            await Registry.Connection.ExecuteAsync("INSERT INTO mad_history VALUES (@name, @Key, @Version, @Arm, @Outputs, @at)",
                new { name, s.Key, s.Version, s.Arm, s.Outputs, at = Text(s.ScoredAt) }, transaction);
        }

        foreach (var l in labels)
        {
            await Registry.Connection.ExecuteAsync($"INSERT INTO {outcomes} VALUES (@Id, @Label, @at)",
                new { l.Id, l.Label, at = l.ObservedAt is { } o ? Text(o) : null }, transaction);
        }

        transaction.Commit();
    }

    /// <summary>The rows of PostgreSQL's flowers table <paramref name="source"/> into the file's flowers (features as doubles).</summary>
    public async Task CopySourceAsync(NpgsqlDataSource pg, string source)
    {
        var rows = await pg.QueryAsync<(long Id, double A, double B, double C, double D)>(
            $"SELECT id, sepal_length::float8, sepal_width::float8, petal_length::float8, petal_width::float8 FROM public.{source}");
        using var transaction = Registry.Connection.BeginTransaction();
        foreach (var r in rows)
        {
            await Registry.Connection.ExecuteAsync("INSERT INTO flowers VALUES (@Id, @A, @B, @C, @D)", new { r.Id, r.A, r.B, r.C, r.D }, transaction);
        }

        transaction.Commit();
    }

    private static string Text(DateTime at) => at.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await Registry.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { Path, Path + "-wal", Path + "-shm" })
        {
            File.Delete(file);
        }
    }
}

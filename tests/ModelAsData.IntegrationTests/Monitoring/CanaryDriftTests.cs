using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Jobs;
using ModelAsData.IntegrationTests.Deployments;
using ModelAsData.Sidecar;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// Under a canary every door counts each arm's rows under its own version, against that version's baseline: the
/// counts of each version are exactly the rows it scored (refresh and stream on PostgreSQL, refresh on SQLite).
/// </summary>
public sealed class CanaryDriftTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 180_000)]
    public async Task Refresh_and_stream_count_a_canarys_rows_under_the_canary_version()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        await registry.WaitForValidationAsync(model, 2, TimeSpan.FromSeconds(30), Ct);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        var training = Sql.UniqueName("training");
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 1_000, seed: 11);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 2_000);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync($"""
            SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, percent => 30);
            SELECT mad.set_baseline(@model, 1, 'public.{training}'); SELECT mad.set_baseline(@model, 2, 'public.{training}');
            """, new { model });

        await tables.RefreshAsync(name, cancellationToken: Ct);
        var afterRefresh = await CountedAsync(name);
        Assert.Equal(await ScoredAsync(name), afterRefresh);
        Assert.Equal([1, 2], afterRefresh.Keys.Order());

        // New keys reach the table through the stream only: each counted under the version that scored it.
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{source} SELECT g, 4.4 + (g % 31) * 0.1, 2.1 + (g % 19) * 0.1, 1.2 + (g % 53) * 0.1, 0.2 + (g % 23) * 0.1 FROM generate_series(2001, 2400) g
            """);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}") < 2_400 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, Ct);
        }

        var scored = await ScoredAsync(name);
        Assert.Equal(2_400, scored.Values.Sum());
        Assert.Equal(scored, await CountedAsync(name));
    }

    [Fact(Timeout = 90_000)]
    public async Task The_embedded_refresh_counts_a_canarys_rows_under_the_canary_version()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mad-canary-drift-{Guid.NewGuid():N}.db");
        try
        {
            await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
            var iris = TestModels.Bytes("skl2onnx_rf_iris.onnx");
            await registry.PushAsync("iris", iris, [], Ct);
            await registry.PushAsync("iris", await File.ReadAllBytesAsync(Path.Combine(AppContext.BaseDirectory, "TestData", "rf_iris_rotated.onnx"), Ct), [], Ct);
            await DriftRows.CreateSqliteAsync(registry.Connection, "flowers", 1_500, seed: 12);
            var deployments = new SqliteDeployments(registry);
            await deployments.DeployAsync("iris", "production", 1, cancellationToken: Ct);
            await deployments.DeployCanaryAsync("iris", "production", 2, 30, cancellationToken: Ct);
            var tables = new SqlitePredictionTables(registry);
            await tables.CreateAsync(new PredictionTableSpec("scores", "flowers", ["id"], "iris@production", Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
            var monitoring = new SqliteMonitoring(registry);
            await monitoring.SetBaselineAsync("iris", 1, "flowers", null, Ct);
            await monitoring.SetBaselineAsync("iris", 2, "flowers", null, Ct);

            await tables.RefreshAsync("scores", cancellationToken: Ct);

            var scored = (await registry.Connection.QueryAsync<(long Version, long Rows)>(
                "SELECT model_version, count(*) FROM mad_out_scores GROUP BY model_version ORDER BY 1")).Select(r => ((int)r.Version, r.Rows)).ToList();
            var counted = (await monitoring.DriftAsync("scores", null, TimeSpan.FromDays(1), Ct))
                .Where(r => r.Kind == "input" && r.Column == "sepal_length" && r.Metric == "psi").OrderBy(r => r.Version).Select(r => (r.Version, r.NCurrent)).ToList();
            Assert.Equal(2, scored.Count);
            Assert.Equal(scored, counted);
            Assert.Equal(1_500, counted.Sum(c => c.NCurrent));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(path);
        }
    }

    /// <summary>Rows per version in the output table.</summary>
    private async Task<Dictionary<int, long>> ScoredAsync(string name) =>
        (await Database.DataSource.QueryAsync<(int Version, long Rows)>($"SELECT model_version, count(*) FROM mad_out.{name} GROUP BY 1"))
        .ToDictionary(r => r.Version, r => r.Rows);

    /// <summary>Rows counted per version for one input column (nulls included), from mad.drift.</summary>
    private async Task<Dictionary<int, long>> CountedAsync(string name) =>
        (await Database.DataSource.QueryAsync<(int Version, long NCurrent)>(
            "SELECT version, n_current FROM mad.drift(@name) WHERE kind = 'input' AND \"column\" = 'sepal_length' AND metric = 'psi'", new { name }))
        .ToDictionary(r => r.Version, r => r.NCurrent);
}

using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core.Deployments;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>Shadow scoring on SQLite (009): `mad tables refresh` writes mad_out_&lt;name&gt;__shadow beside the served rows.</summary>
public sealed class SqliteShadowTests : IAsyncLifetime
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-shadow-{Guid.NewGuid():N}.db");
    private SqliteModelRegistry _registry = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Iris => Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx");

    private static string Rotated => Path.Combine(AppContext.BaseDirectory, "TestData", "rf_iris_rotated.onnx");

    public async ValueTask InitializeAsync()
    {
        _registry = await SqliteModelRegistry.OpenAsync(_path, Ct);
        SqlitePredictFunctions.Register(_registry.Connection);
        await _registry.PushAsync("churn", await File.ReadAllBytesAsync(Iris, Ct), [], Ct);
        await _registry.PushAsync("churn", await File.ReadAllBytesAsync(Rotated, Ct), [], Ct);
        await _registry.PushAsync("churn", await File.ReadAllBytesAsync(Iris, Ct), [], Ct);
        await _registry.Connection.ExecuteAsync("""
            CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL);
            WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000)
            INSERT INTO flowers SELECT i, 4.3 + (i % 37) * 0.1, 2.0 + (i % 23) * 0.1, 1.0 + (i % 59) * 0.1, 0.1 + (i % 25) * 0.1 FROM g;
            """);
    }

    public async ValueTask DisposeAsync()
    {
        await _registry.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Tables_refresh_writes_shadow_rows_for_every_sampled_key_and_none_served()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await deployments.DeployCanaryAsync("churn", "production", 3, 50, cancellationToken: Ct);
        var deployment = await deployments.DeployShadowAsync("churn", "production", 2, 40, cancellationToken: Ct);
        await tables.CreateAsync(new("scores", "flowers", ["id"], "churn", Core.FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);

        var result = await tables.RefreshAsync("scores", cancellationToken: Ct);

        Assert.Equal(3_000, result.Rows);
        Assert.Equal([(1L, "champion"), (3L, "canary")], await _registry.Connection.QueryAsync<(long, string)>(
            "SELECT DISTINCT model_version, arm FROM mad_out_scores ORDER BY 1"));
        var shadow = (await _registry.Connection.QueryAsync<(long Id, long Shadow, long Served, long ModelVersion, double S1, double P0)>("""
            SELECT s.id, s.shadow_version, s.served_version, o.model_version, s.probability_1, o.probability_0
            FROM mad_out_scores__shadow s JOIN mad_out_scores o USING (id) ORDER BY s.id
            """)).ToList();
        var sampled = Enumerable.Range(1, 3_000).Where(k => deployment.ShadowScores(StickyBucket.KeyText(k))).Select(k => (long)k).ToList();
        Assert.Equal(sampled, shadow.Select(s => s.Id));
        Assert.All(shadow, s =>
        {
            Assert.Equal((2L, s.ModelVersion), (s.Shadow, s.Served));
            Assert.Equal(s.P0, s.S1, 6); // the rotated forest's class 1 is the forest's class 0
        });
        var report = await deployments.ReportAsync("churn", "production", Ct);
        Assert.Equal(sampled.Count, report.Single(a => a.Arm == Arms.Shadow).RowsScored);
        // Its agreement with the served rows, as PostgreSQL defines it (mad.shadow_agreement), over the same JOIN.
        var expected = (await _registry.Connection.QueryAsync<(double Equal, double Difference)>("""
            SELECT avg(CASE WHEN s.label = o.label THEN 1.0 ELSE 0.0 END),
                   avg((abs(s.probability_0 - o.probability_0) + abs(s.probability_1 - o.probability_1) + abs(s.probability_2 - o.probability_2)) / 3.0)
            FROM mad_out_scores o JOIN mad_out_scores__shadow s USING (id)
            """)).Single();
        var shadowArm = report.Single(a => a.Arm == Arms.Shadow);
        Assert.Equal(expected.Equal, shadowArm.ShareEqual!.Value, 9);
        Assert.Equal(expected.Difference, shadowArm.MeanAbsoluteDifference!.Value, 9);
        Assert.True(shadowArm.ShareEqual < 1, "the rotated forest disagrees with the forest on some labels");
        Assert.Null(shadowArm.ShadowError);
        Assert.Null(report.Single(a => a.Arm == Arms.Champion).ShareEqual);
        Assert.Equal(((long?)2, (long?)sampled.Count, (string?)null), (await _registry.Connection.QueryAsync<(long?, long?, string?)>(
            "SELECT shadow_version, shadow_rows, shadow_error FROM mad_prediction_tables WHERE name = 'scores'")).Single());

        // A second refresh replaces the shadow's rows, as it replaces the served ones.
        await tables.RefreshAsync("scores", cancellationToken: Ct);
        Assert.Equal(sampled.Count, await _registry.Connection.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_out_scores__shadow"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_shadow_that_cannot_load_leaves_the_served_refresh_intact_and_says_why()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await deployments.DeployShadowAsync("churn", "production", 2, cancellationToken: Ct);
        // Version 2's bytes go bad after it was validated: ONNX Runtime refuses them.
        await _registry.Connection.ExecuteAsync(
            "UPDATE mad_model_versions SET onnx = x'0102030405', sha256 = lower(hex(randomblob(32))) WHERE model = 'churn' AND version = 2");
        await tables.CreateAsync(new("scores", "flowers", ["id"], "churn", Core.FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);

        var result = await tables.RefreshAsync("scores", cancellationToken: Ct);

        Assert.Equal(3_000, result.Rows);
        Assert.Equal(3_000, await _registry.Connection.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_out_scores WHERE model_version = 1 AND error IS NULL"));
        Assert.Equal(0, await _registry.Connection.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_out_scores__shadow"));
        var error = await _registry.Connection.ExecuteScalarAsync<string>("SELECT shadow_error FROM mad_prediction_tables WHERE name = 'scores'");
        Assert.StartsWith("The shadow churn@2 failed", error, StringComparison.Ordinal);
        Assert.Equal(error, (await new SqliteDeployments(_registry).ReportAsync("churn", "production", Ct)).Single(a => a.Arm == Arms.Shadow).ShadowError);
    }
}

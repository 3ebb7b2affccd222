using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary><c>mad monitor baseline</c> and <c>mad monitor drift</c> through the real parser, on both stores.</summary>
public sealed class MonitorCliTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task On_sqlite_a_baseline_a_refresh_and_drift_with_a_report()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mad-monitor-{Guid.NewGuid():N}.db");
        var html = Path.ChangeExtension(path, ".html");
        try
        {
            await using (var registry = await SqliteModelRegistry.OpenAsync(path, Ct))
            {
                await DriftRows.CreateSqliteAsync(registry.Connection, "training", 1_000, seed: 1);
                await DriftRows.CreateSqliteAsync(registry.Connection, "flowers", 1_000, seed: 2, shift: 1.5);
            }

            Assert.Equal(0, (await RunWithDbAsync(path, "models", "push", "iris", System.IO.Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx"))).ExitCode);
            Assert.Equal(0, (await RunWithDbAsync(path, "tables", "create", "scores", "--model", "iris", "--source", "flowers", "--key", "id", "--features", BatchTables.IrisFeatures)).ExitCode);
            var notVersion = await RunWithDbAsync(path, "monitor", "baseline", "iris", "--from", "training");
            var baseline = await RunWithDbAsync(path, "monitor", "baseline", "iris@1", "--from", "training");
            var before = await RunWithDbAsync(path, "monitor", "drift", "scores");
            await RunWithDbAsync(path, "tables", "refresh", "scores");
            var drift = await RunWithDbAsync(path, "monitor", "drift", "scores", "--window", "1d", "--html", html);
            var badWindow = await RunWithDbAsync(path, "monitor", "drift", "scores", "--window", "90m");

            Assert.NotEqual(0, notVersion.ExitCode);
            Assert.Contains("write iris@<version>", notVersion.Output, StringComparison.Ordinal);
            Assert.Equal(0, baseline.ExitCode);
            Assert.Contains("1,000 rows, 4 input column(s), 4 output column(s)", baseline.Output, StringComparison.Ordinal);
            Assert.Equal(0, before.ExitCode);
            Assert.Contains("window(s) without rows", before.Output, StringComparison.Ordinal);
            Assert.Equal(3, drift.ExitCode); // something drifted
            Assert.Contains("sepal_length", drift.Output, StringComparison.Ordinal);
            Assert.Contains("Wrote the report", drift.Output, StringComparison.Ordinal);
            Assert.NotEqual(0, badWindow.ExitCode);
            Assert.Contains("A window is a number of hours or days", badWindow.Output, StringComparison.Ordinal);
            var report = await File.ReadAllTextAsync(html, Ct);
            Assert.Contains("<tr class=\"drifted\">", report, StringComparison.Ordinal);
            Assert.DoesNotContain("http://", report.Replace("http://www.w3.org/", "", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.DoesNotContain("<script", report, StringComparison.Ordinal);
            Assert.Equal(8, await DriftReportBrowser.RenderedPlotsAsync(html, 8));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            File.Delete(path);
            File.Delete(html);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task On_postgres_the_same_verbs_go_through_mad_set_baseline_and_mad_drift()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var (training, source, name) = (Sql.UniqueName("training"), Sql.UniqueName("flowers"), Sql.UniqueName("scores"));
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 1_000, seed: 1);
        await DriftRows.CreatePostgresAsync(Database.DataSource, source, 1_000, seed: 1);
        await BatchTables.CreateAsync(tables, name, source, model);

        var baseline = await RunAsync("monitor", "baseline", $"{model}@1", "--from", training, "--bins", """{"sepal_length": [4, 5, 6, 7]}""");
        var refresh = await RunAsync("tables", "refresh", name, "--wait");
        var drift = await RunAsync("monitor", "drift", name, "--all");

        Assert.Equal(0, baseline.ExitCode);
        Assert.Equal(0, refresh.ExitCode);
        Assert.Equal(0, drift.ExitCode); // the same rows: nothing drifted
        Assert.Contains("0 of 8 column(s) drifted in 1 window(s)", drift.Output, StringComparison.Ordinal);
        var edges = await Database.DataSource.ScalarAsync<double[]>(
            "SELECT edges FROM mad.baselines WHERE model = @model AND column_name = 'sepal_length'", new { model });
        Assert.Equal([4.0, 5, 6, 7], edges);
    }
}

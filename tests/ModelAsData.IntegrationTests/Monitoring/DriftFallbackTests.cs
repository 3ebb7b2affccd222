using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Monitoring;
using ModelAsData.Sidecar;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// A version without a baseline falls back to its first window of traffic, and mad.drift says so (reference
/// 'first_window'); a baseline set later takes over; windows without rows give n_current = 0 rows without values.
/// </summary>
public sealed class DriftFallbackTests(PostgresDatabase database) : DatabaseTests(database)
{
    private static readonly TimeSpan s_day = TimeSpan.FromDays(1);

    [Fact(Timeout = 120_000)]
    public async Task A_version_without_a_baseline_is_compared_with_its_first_window_until_a_baseline_is_set()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var (training, source, name) = (Sql.UniqueName("training"), Sql.UniqueName("flowers"), Sql.UniqueName("scores"));
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 1_000, seed: 1);
        await DriftRows.CreatePostgresAsync(Database.DataSource, source, 2_000, seed: 2);
        await BatchTables.CreateAsync(tables, name, source, model);
        var monitoring = new PostgresMonitoring(new PostgresModelRegistry(Database.DataSource), ModelCache.Shared);

        await tables.RefreshAsync(name, cancellationToken: Ct);
        var fallback = await monitoring.DriftAsync(name, null, s_day, Ct);
        var stored = await Database.DataSource.QueryAsync<(string Kind, string Column, string Reference)>(
            "SELECT kind, column_name, reference FROM mad.baselines WHERE model = @model AND version = 1", new { model });

        Assert.NotEmpty(fallback);
        Assert.All(fallback, r => Assert.Equal(References.FirstWindow, r.Reference));
        Assert.Contains(fallback, r => r.Kind == "input" && r.Column == "sepal_length");
        Assert.Contains(fallback, r => r.Kind == "output");
        Assert.All(fallback, r => Assert.True(r.NCurrent == 2_000 && r.NBaseline is > 0 and <= 2_000, $"{r.Column}: {r.NBaseline} against {r.NCurrent}"));
        Assert.All(fallback, r => Assert.False(r.Value is { } v && (double.IsNaN(v) || double.IsInfinity(v)), $"{r.Column} {r.Metric}: {r.Value}"));
        Assert.DoesNotContain(fallback, r => r.Metric == "psi" && r.Drifted); // the same traffic as its first window
        Assert.All(stored, s => Assert.Equal("first_window", s.Reference));

        // A baseline replaces the inputs' first window (and the counts made in its bins); outputs keep theirs.
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{training}')");
        await tables.RefreshAsync(name, cancellationToken: Ct);
        var after = await Database.DataSource.QueryAsync<(string Kind, string Reference, long NBaseline, long NCurrent)>(
            "SELECT kind, reference, n_baseline, n_current FROM mad.drift(@name)", new { name });

        Assert.All(after.Where(r => r.Kind == "input"), r => Assert.Equal(("baseline", 1_000L, 2_000L), (r.Reference, r.NBaseline, r.NCurrent)));
        Assert.All(after.Where(r => r.Kind == "output"), r => Assert.Equal(("first_window", 4_000L), (r.Reference, r.NCurrent)));
    }

    [Fact(Timeout = 90_000)]
    public async Task Windows_without_rows_give_n_current_zero_rows_without_values()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var (source, name) = (Sql.UniqueName("flowers"), Sql.UniqueName("scores"));
        await DriftRows.CreatePostgresAsync(Database.DataSource, source, 200, seed: 3);
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{source}')");

        // Never scored: every window of the last three days, each column, each metric: a row with n_current = 0.
        var rows = await Database.DataSource.QueryAsync<(DateTime Start, string Column, double? Value, bool Drifted, long NBaseline, long NCurrent, string Reference)>(
            "SELECT window_start, \"column\", value, drifted, n_baseline, n_current, reference FROM mad.drift(@name, now() - interval '3 days', '1 day')", new { name });

        Assert.True(rows.Select(r => r.Start).Distinct().Count() >= 3);
        Assert.Contains(rows, r => r.Column == "sepal_length");
        Assert.All(rows, r => Assert.Equal((null, false, 200L, 0L, "baseline"), (r.Value, r.Drifted, r.NBaseline, r.NCurrent, r.Reference)));
    }

    [Fact(Timeout = 90_000)]
    public async Task The_embedded_store_falls_back_to_the_first_refresh()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mad-fallback-{Guid.NewGuid():N}.db");
        try
        {
            await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
            await registry.PushAsync("iris", TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
            await DriftRows.CreateSqliteAsync(registry.Connection, "flowers", 500, seed: 4);
            var tables = new SqlitePredictionTables(registry);
            await tables.CreateAsync(new PredictionTableSpec("scores", "flowers", ["id"], "iris", Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
            var monitoring = new SqliteMonitoring(registry);

            Assert.All(await monitoring.DriftAsync("scores", null, s_day, Ct), r => Assert.Equal(0, r.NCurrent));
            await tables.RefreshAsync("scores", cancellationToken: Ct);
            var drift = await monitoring.DriftAsync("scores", null, s_day, Ct);

            Assert.Contains(drift, r => r.Kind == "input" && r.Column == "sepal_length");
            Assert.Contains(drift, r => r.Kind == "output");
            Assert.All(drift, r => Assert.Equal((References.FirstWindow, 500L, 500L), (r.Reference, r.NBaseline, r.NCurrent)));
            Assert.All(drift.Where(r => r.Metric == "psi"), r => Assert.Equal(0, r.Value!.Value, 9));

            await monitoring.SetBaselineAsync("iris", 1, "flowers", null, Ct);
            Assert.All(await monitoring.DriftAsync("scores", null, s_day, Ct), r => Assert.Equal((References.Baseline, 0L), (r.Reference, r.NCurrent)));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            File.Delete(path);
        }
    }
}

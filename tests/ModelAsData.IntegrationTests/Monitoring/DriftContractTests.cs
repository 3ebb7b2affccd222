using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Monitoring;
using ModelAsData.Sidecar;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// Baseline, counting while scoring and drift, end to end on PostgreSQL (mad.set_baseline, a sidecar's refresh,
/// mad.drift) and on SQLite (in-process), over the same rows: both stores give the same rows and values.
/// </summary>
public sealed class DriftContractTests(PostgresDatabase database) : DatabaseTests(database)
{
    private static readonly TimeSpan s_day = TimeSpan.FromDays(1);

    [Fact(Timeout = 120_000)]
    public async Task Both_stores_count_refreshed_rows_into_the_baseline_and_give_the_same_drift()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var (training, source, name) = (Sql.UniqueName("training"), Sql.UniqueName("flowers"), Sql.UniqueName("scores"));
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 3_000, seed: 1);
        await DriftRows.CreatePostgresAsync(Database.DataSource, source, 2_000, seed: 2, shift: 1.5);
        await BatchTables.CreateAsync(tables, name, source, model);
        var monitoring = new PostgresMonitoring(new PostgresModelRegistry(Database.DataSource), ModelCache.Shared);

        var summary = await monitoring.SetBaselineAsync(model, 1, "public." + training, null, Ct);
        await tables.RefreshAsync(name, cancellationToken: Ct);
        var postgres = await monitoring.DriftAsync(name, null, s_day, Ct);

        Assert.Equal((4, 4, 3_000L), (summary.Inputs, summary.Outputs, summary.Rows));
        Assert.Equal(2_000, await Database.DataSource.ScalarAsync<long>(
            "SELECT sum(count) FROM mad.profile_counts WHERE prediction_table = @name AND column_name = 'sepal_length'", new { name }));
        Assert.All(postgres, r => Assert.Equal((3_000L, 2_000L), (r.NBaseline, r.NCurrent)));
        Assert.Contains(postgres, r => r is { Column: "sepal_length", Metric: "psi", Drifted: true });
        Assert.DoesNotContain(postgres, r => r.Column == "sepal_width" && r.Metric is "psi" or "ks" && r.Drifted);

        var path = Path.Combine(Path.GetTempPath(), $"mad-drift-{Guid.NewGuid():N}.db");
        try
        {
            await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
            await registry.PushAsync(model, TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
            await DriftRows.CreateSqliteAsync(registry.Connection, training, 3_000, seed: 1);
            await DriftRows.CreateSqliteAsync(registry.Connection, source, 2_000, seed: 2, shift: 1.5);
            var sqliteTables = new SqlitePredictionTables(registry);
            await sqliteTables.CreateAsync(new PredictionTableSpec(name, source, ["id"], model, Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
            var sqliteMonitoring = new SqliteMonitoring(registry);
            await sqliteMonitoring.SetBaselineAsync(model, 1, training, null, Ct);
            await sqliteTables.RefreshAsync(name, cancellationToken: Ct);
            var sqlite = await sqliteMonitoring.DriftAsync(name, null, s_day, Ct);

            Assert.Equal(postgres.Select(Key), sqlite.Select(Key));
            foreach (var (p, s) in postgres.Zip(sqlite))
            {
                Assert.True(Close(p.Value, s.Value) && Close(p.Threshold, s.Threshold) && p.Drifted == s.Drifted,
                    $"{p.Column} {p.Metric}: PostgreSQL {DriftRows.Describe(p.Value)} (threshold {DriftRows.Describe(p.Threshold)}, {p.Drifted}), SQLite {DriftRows.Describe(s.Value)} (threshold {DriftRows.Describe(s.Threshold)}, {s.Drifted})");
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            File.Delete(path);
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task Streamed_rows_are_counted_in_their_batch_and_windows_sum_the_refresh_and_the_stream()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var (source, name) = (Sql.UniqueName("flowers"), Sql.UniqueName("scores"));
        await DriftRows.CreatePostgresAsync(Database.DataSource, source, 100, seed: 5);
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{source}')");
        await tables.RefreshAsync(name, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 9.5, 3.0, NULL, 1.0 FROM generate_series(101, 110) g");
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"), n => n == 110, "the streamed rows");
        var counts = await Database.DataSource.QueryAsync<(string Column, int Bin, long Count)>(
            "SELECT column_name, bin, sum(count)::bigint FROM mad.profile_counts WHERE prediction_table = @name AND kind = 'input' GROUP BY 1, 2", new { name });
        var drift = await new PostgresMonitoring(new PostgresModelRegistry(Database.DataSource), ModelCache.Shared).DriftAsync(name, null, s_day, Ct);

        Assert.All(counts.GroupBy(c => c.Column), g => Assert.Equal(110, g.Sum(c => c.Count)));
        Assert.Equal(10, counts.Single(c => c is { Column: "sepal_length", Bin: 11 }).Count); // 9.5: the overflow bin
        Assert.Equal(10, counts.Single(c => c is { Column: "petal_length", Bin: -1 }).Count); // nulls
        Assert.All(drift.Where(r => r.Kind == "input"), r => Assert.Equal(110, r.NCurrent));
    }

    [Fact(Timeout = 60_000)]
    public async Task The_sql_metrics_are_the_core_metrics_golden_values_included()
    {
        var golden = await Database.DataSource.QueryAsync<(string Metric, double Value)>(
            "SELECT metric, value FROM mad.drift_metric_values('category', '{25,25,25,25}', 0, '{10,20,30,40}', 0, NULL, 0)");
        Assert.Equal(0.2282, golden.Single(m => m.Metric == "psi").Value, 4);
        Assert.Equal(0.2005, golden.Single(m => m.Metric == "js").Value, 4);
        Assert.Equal(0.15, golden.Single(m => m.Metric == "linf").Value, 10);
        var ks = await Database.DataSource.ScalarAsync<double>(
            "SELECT value FROM mad.drift_metric_values('numeric', '{25,25,25,25}', 0, '{10,20,30,40}', 0, '{0,1,2,3}', 1) WHERE metric = 'ks'");
        Assert.Equal(0.20, ks, 10);
        Assert.Equal(1.5640, await Database.DataSource.ScalarAsync<double>(
            "SELECT value FROM mad.drift_metric_values('numeric', '{5,5,0}', 0, '{4,4,2}', 0, '{0,1,2}', 1) WHERE metric = 'psi'"), 4);

        var random = new Random(16);
        for (var trial = 0; trial < 40; trial++)
        {
            var type = trial % 2 == 0 ? ProfileType.Numeric : ProfileType.Category;
            var bins = random.Next(1, 14);
            var b = Enumerable.Range(0, bins).Select(_ => (long)random.Next(0, trial < 20 ? 30 : 5_000)).ToArray();
            var c = Enumerable.Range(0, bins).Select(_ => (long)random.Next(0, trial < 20 ? 30 : 5_000)).ToArray();
            var (bn, cn) = ((long)random.Next(0, 3), (long)random.Next(0, 3));
            var positions = Enumerable.Range(0, bins).Select(i => i * 1.5).ToArray();
            var expected = DriftEvaluator.Evaluate(type, b, bn, c, cn, positions, 2.5);
            var actual = await Database.DataSource.QueryAsync<(string Metric, double? Value, double? Threshold, bool Drifted)>(
                "SELECT * FROM mad.drift_metric_values(@type, @b, @bn, @c, @cn, @positions, 2.5)",
                new { type = type == ProfileType.Numeric ? "numeric" : "category", b, bn, c, cn, positions });
            Assert.Equal(expected.Select(e => e.Metric), actual.Select(a => a.Metric));
            foreach (var (e, a) in expected.Zip(actual))
            {
                Assert.True(Close(e.Value, a.Value) && Close(e.Threshold, a.Threshold) && e.Drifted == a.Drifted,
                    $"trial {trial} {e.Metric}: C# {DriftRows.Describe(e.Value)}/{DriftRows.Describe(e.Threshold)}/{e.Drifted}, SQL {DriftRows.Describe(a.Value)}/{DriftRows.Describe(a.Threshold)}/{a.Drifted} ({string.Join(",", b)}+{bn} vs {string.Join(",", c)}+{cn})");
            }
        }
    }

    private static (string, string, string, int) Key(DriftRow r) => (r.Kind, r.Column, r.Metric, r.Version);

    private static bool Close(double? a, double? b) => (a, b) switch
    {
        (null, null) => true,
        ({ } x, { } y) => Math.Abs(x - y) <= 1e-9 * Math.Max(1, Math.Abs(x)),
        _ => false,
    };
}

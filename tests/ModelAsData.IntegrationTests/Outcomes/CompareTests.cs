using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Monitoring;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// mad.compare: the champion and the canary of model@alias on outcomes, with the test of the difference, the
/// sample-ratio check and the fixed horizon (an interim look gives no verdict).
/// </summary>
public sealed class CompareTests(PostgresDatabase database) : DatabaseTests(database)
{
    private sealed record ArmRow(string Arm, int Version, long N, long NLabeled, string MetricName, double? Value, double? Difference,
        double? Statistic, double? PValue, string? Test, bool? SampleRatioMismatch, bool? Significant, string? Verdict);

    /// <summary>When <see cref="DeployedAsync"/>'s deployment is recorded as made: before its rows were served.</summary>
    internal static readonly DateTimeOffset DeployedAt = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// A deployment of a model at 50 % (rolling to 100 when <paramref name="rolling"/>) with a table served through it:
    /// 200 rows per arm, the champion right on 120, the canary on <paramref name="canaryRight"/>. The alias's and the
    /// deployment's history are dated <see cref="DeployedAt"/>, the day before the rows were served, so mad.compare
    /// (which counts only what was served under the current deployment) counts them.
    /// </summary>
    internal static async Task<(string Model, string Name, string Outcomes)> DeployedAsync(PostgresDatabase database, int canaryRight = 160, bool rolling = false)
    {
        var (model, tables, _) = await BatchTables.TwoReadyVersionsAsync(database);
        await database.DataSource.ExecuteAsync(rolling
            ? $"SELECT mad.deploy_canary('{model}', 'production', 2, steps => '{{50,100}}', step_every => '1 hour')"
            : $"SELECT mad.deploy_canary('{model}', 'production', 2, 50)");
        await database.DataSource.ExecuteAsync($"""
            UPDATE mad.alias_history SET moved_at = '{DeployedAt:u}' WHERE model = '{model}';
            UPDATE mad.deployment_history SET changed_at = '{DeployedAt:u}' WHERE model = '{model}';
            """);
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(database.DataSource, served: (model, tables));
        await OutcomeTables.ServeAsync(database.DataSource, name, string.Join(", ", Enumerable.Range(0, 400).Select(i =>
            $"('{i}', {(i < 200 ? 1 : 2)}, '{(i < 200 ? "champion" : "canary")}', '{OutcomeTables.Binary(0.9)}', '2026-11-02 10:00+00')")));
        // Every prediction is 1; the label is 1 for the first 120 champion rows and the first canaryRight canary rows.
        await database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{outcomes} SELECT g, CASE WHEN g < 120 OR (g >= 200 AND g < {200 + canaryRight}) THEN '1' ELSE '0' END, '2026-11-02 12:00+00'
            FROM generate_series(0, 399) g
            """);
        return (model, name, outcomes);
    }

    private async Task<IReadOnlyList<ArmRow>> CompareAsync(string args) => await Database.DataSource.QueryAsync<ArmRow>($"""
        SELECT arm AS Arm, version AS Version, n AS N, n_labeled AS NLabeled, metric_name AS MetricName, value AS Value, difference AS Difference,
               statistic AS Statistic, p_value AS PValue, test AS Test, sample_ratio_mismatch AS SampleRatioMismatch, significant AS Significant, verdict AS Verdict
        FROM mad.compare({args})
        """);

    [Fact(Timeout = 120_000)]
    public async Task A_better_canary_is_reported_with_its_z_test_and_no_verdict_before_the_horizon()
    {
        var (model, _, _) = await DeployedAsync(Database);
        var expected = (await Database.DataSource.QueryAsync<(double Z, double P)>("SELECT z, p_value FROM mad.proportion_test(120, 200, 160, 200)")).Single();

        var rows = await CompareAsync($"'{model}', 'production', horizon => 100");
        var interim = await CompareAsync($"'{model}', 'production'");
        var loss = await CompareAsync($"'{model}', 'production', 'log_loss', 100");

        Assert.Equal([("champion", 1, 200L, 0.6), ("canary", 2, 200L, 0.8)], rows.Select(r => (r.Arm, r.Version, r.NLabeled, r.Value!.Value)));
        var canary = rows[1];
        Assert.Equal(("accuracy", "two-proportion z", false, true, "canary significantly better"),
            (canary.MetricName, canary.Test, canary.SampleRatioMismatch, canary.Significant, canary.Verdict));
        Assert.Equal(0.2, canary.Difference!.Value, 12);
        Assert.Equal(expected.Z, canary.Statistic!.Value, 12);
        Assert.Equal(expected.P, canary.PValue!.Value, 12);
        Assert.Null(interim[1].Significant);
        Assert.StartsWith("interim: 200 and 200 labelled rows", interim[1].Verdict, StringComparison.Ordinal);
        // Log loss is a mean: Welch's t. Every row scored 0.9 for 1, so the canary (more 1s) has the lower loss.
        Assert.Equal(("welch t", "canary significantly better"), (loss[1].Test, loss[1].Verdict));
        Assert.True(loss[1].Difference < 0);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_split_far_from_the_deployed_percent_is_flagged()
    {
        var (model, name, outcomes) = await DeployedAsync(Database);
        // 300 more champion rows: 500 against 200 at 50 %.
        await OutcomeTables.ServeAsync(Database.DataSource, name, string.Join(", ", Enumerable.Range(1000, 300).Select(i =>
            $"('{i}', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-11-02 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} SELECT g, '1', '2026-11-02 12:00+00' FROM generate_series(1000, 1299) g");

        var rows = await CompareAsync($"'{model}', 'production', horizon => 100");

        Assert.Equal((500L, 200L), (rows[0].N, rows[1].N));
        Assert.True(rows[1].SampleRatioMismatch);
        Assert.StartsWith("sample ratio mismatch", rows[1].Verdict, StringComparison.Ordinal);
        var unknown = await Database.DataSource.FailsAsync($"SELECT * FROM mad.compare('{model}', 'production', 'accurracy')");
        Assert.Equal(Npgsql.PostgresErrorCodes.InvalidParameterValue, unknown.SqlState);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_champions_history_from_before_the_canary_is_not_counted()
    {
        var (model, name, outcomes) = await DeployedAsync(Database);
        // A month of the champion alone before the canary began: 5,000 labelled rows, all wrong. Counted, they would
        // make 5,200 against 200 at 50 % (a sample ratio mismatch) and the champion's accuracy 0.023.
        await OutcomeTables.ServeAsync(Database.DataSource, name, string.Join(", ", Enumerable.Range(10_000, 5_000).Select(i =>
            $"('{i}', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-10-01 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} SELECT g, '0', '2026-10-01 12:00+00' FROM generate_series(10000, 14999) g");
        var report = await new PostgresOutcomeReports(Database.DataSource).CompareAsync(model, "production", null, 100, TestContext.Current.CancellationToken);

        var rows = report.Rows;
        Assert.Equal([("champion", 200L, 200L, 0.6), ("canary", 200L, 200L, 0.8)], rows.Select(r => (r.Arm, r.N!.Value, r.NLabeled, r.Value!.Value)));
        Assert.Equal((false, "canary significantly better"), (rows[1].SampleRatioMismatch, rows[1].Verdict));
        Assert.Equal([$"Counted only predictions scored since 2026-11-01T00:00:00Z, when {model}@production began serving version 1 with version 2 on 50 % as the canary: earlier ones were served under another split."],
            report.Notices);
        // The report still reads everything: the October window is there, graded.
        var october = await Database.DataSource.QueryAsync<double>(
            $"SELECT value FROM mad.performance('{name}') WHERE metric = 'accuracy' AND window_start = '2026-10-01 00:00+00'");
        Assert.Equal([0.0], october);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_new_split_starts_the_count_again()
    {
        var (model, name, outcomes) = await DeployedAsync(Database);
        // The canary is ended and started again at 80 %: what was served at 50 % no longer counts, and nothing has been
        // served since. Then 80 rows of the new split: counted against 80 %, not against the old 200 and 200.
        await Database.DataSource.ExecuteAsync($"SELECT mad.abort_deployment('{model}', 'production'); SELECT mad.deploy_canary('{model}', 'production', 2, 80);");

        var before = await CompareAsync($"'{model}', 'production', horizon => 10");
        await OutcomeTables.ServeAsync(Database.DataSource, name, string.Join(", ", Enumerable.Range(20_000, 100).Select(i =>
            $"('{i}', {(i < 20_020 ? 1 : 2)}, '{(i < 20_020 ? "champion" : "canary")}', '{OutcomeTables.Binary(0.9)}', clock_timestamp())")));
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} SELECT g, '1', clock_timestamp() + interval '1 hour' FROM generate_series(20000, 20099) g");
        var after = await CompareAsync($"'{model}', 'production', horizon => 10");
        var report = await Database.DataSource.QueryAsync<long>($"SELECT n_labeled FROM mad.performance('{name}') WHERE metric = 'accuracy'");

        Assert.Empty(before);
        Assert.Equal([("champion", 20L, false), ("canary", 80L, false)], after.Select(r => (r.Arm, r.N, r.SampleRatioMismatch ?? false)));
        Assert.Equal(500L, report.Sum());   // the report reads everything served
    }
}

using System.Globalization;
using System.Text;
using Dapper;
using ModelAsData.IntegrationTests.Batch;
using Npgsql;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// mad.set_outcomes, the served history and mad.performance on PostgreSQL: the goldens of issue 17 (scikit-learn's
/// definitions), duplicates, zero coverage, as_of and late labels.
/// </summary>
public sealed class PerformanceTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const string Day = "2026-11-02";

    private sealed record Row(DateTime WindowStart, int Version, string Arm, string Metric, double? Value, long NLabeled, double Coverage);

    private async Task<IReadOnlyList<Row>> PerformanceAsync(string name, string args = "") =>
        await Database.DataSource.QueryAsync<Row>(
            $"SELECT window_start AS WindowStart, version AS Version, arm AS Arm, metric AS Metric, value AS Value, n_labeled AS NLabeled, coverage AS Coverage FROM mad.performance('{name}'{args})");

    private static double? Metric(IEnumerable<Row> rows, string metric) => rows.Single(r => r.Metric == metric).Value;

    private static string Values(IEnumerable<string> rows) => string.Join(", ", rows);

    [Fact(Timeout = 60_000)]
    public async Task Log_loss_ece_and_cbpe_match_the_goldens()
    {
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        // Log loss of p = 0.9, 0.2, 0.6 against y = 1, 0, 0 is 0.4149 (window 1).
        await OutcomeTables.ServeAsync(Database.DataSource, name, Values(new[] { 0.9, 0.2, 0.6 }.Select((p, i) =>
            $"('{i + 1}', 1, 'champion', '{OutcomeTables.Binary(p)}', '{Day} 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (1, '1', '{Day} 12:00+00'), (2, '0', '{Day} 12:00+00'), (3, '0', '{Day} 12:00+00')");
        // ECE: 100 rows at 0.2 of which 30 positive, 100 at 0.8 of which 70 positive: 0.10 (window 2).
        await OutcomeTables.ServeAsync(Database.DataSource, name, Values(Enumerable.Range(0, 200).Select(i =>
            $"('{1000 + i}', 1, 'champion', '{OutcomeTables.Binary(i < 100 ? 0.2 : 0.8)}', '2026-11-03 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{outcomes} SELECT 1000 + g, CASE WHEN g < 30 OR (g >= 100 AND g < 170) THEN '1' ELSE '0' END, '2026-11-03 12:00+00'
            FROM generate_series(0, 199) g
            """);
        // CBPE: scores 0.9, 0.8, 0.3, 0.1 without labels: expected accuracy 0.825 (window 3), coverage 0.
        await OutcomeTables.ServeAsync(Database.DataSource, name, Values(new[] { 0.9, 0.8, 0.3, 0.1 }.Select((p, i) =>
            $"('{2000 + i}', 1, 'champion', '{OutcomeTables.Binary(p)}', '2026-11-04 10:00+00')")));

        var rows = await PerformanceAsync(name);

        var first = rows.Where(r => r.WindowStart == new DateTime(2026, 11, 2, 0, 0, 0, DateTimeKind.Utc)).ToList();
        Assert.Equal(0.4149, Metric(first, "log_loss")!.Value, 4);
        Assert.Equal(2.0 / 3, Metric(first, "accuracy")!.Value, 9);   // predictions 1, 0, 1
        Assert.Equal(0.5, Metric(first, "precision")!.Value, 9);
        Assert.Equal(1.0, Metric(first, "recall")!.Value, 9);
        Assert.Equal(1.0, Metric(first, "roc_auc")!.Value, 9);         // positives 0.9 above both negatives
        Assert.All(first, r => Assert.Equal((3L, 1.0), (r.NLabeled, r.Coverage)));
        var second = rows.Where(r => r.WindowStart.Day == 3).ToList();
        Assert.Equal(0.10, Metric(second, "ece")!.Value, 9);
        Assert.Equal(0.70, Metric(second, "roc_auc")!.Value, 9);      // 70·70 wins and 2·30·70 ties over 100·100 pairs
        var third = rows.Where(r => r.WindowStart.Day == 4).ToList();
        Assert.Equal(0.825, Metric(third, "cbpe_accuracy")!.Value, 9);
        Assert.All(third, r => Assert.Equal((0L, 0.0), (r.NLabeled, r.Coverage)));
        Assert.Null(Metric(third, "accuracy"));
        Assert.Equal(["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "ece", "cbpe_accuracy"], first.Select(r => r.Metric));
    }

    [Fact(Timeout = 60_000)]
    public async Task The_latest_duplicate_wins_with_a_notice_a_late_label_changes_only_its_window_and_as_of_returns_what_was_known()
    {
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        await OutcomeTables.ServeAsync(Database.DataSource, name,
            $"('1', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-11-02 10:00+00'), ('2', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-11-03 10:00+00')");
        // Key 1 twice: first wrong (0), then corrected to right (1); the latest wins.
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (1, '0', '2026-11-02 11:00+00'), (1, '1', '2026-11-02 12:00+00')");

        var notices = new List<string>();
        await using (var connection = await Database.DataSource.OpenConnectionAsync(Ct))
        {
            connection.Notice += (_, e) => notices.Add(e.Notice.MessageText);
            await using var command = new NpgsqlCommand($"SELECT count(*) FROM mad.performance('{name}')", connection);
            await command.ExecuteScalarAsync(Ct);
        }
        var before = await PerformanceAsync(name);
        // A late label for key 2 (window of 3 November), observed on the 20th.
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (2, '0', '2026-11-20 00:00+00')");
        var after = await PerformanceAsync(name);
        var then = await PerformanceAsync(name, ", as_of => '2026-11-10'");

        Assert.Contains(notices, n => n.StartsWith("1 outcome(s)", StringComparison.Ordinal) && n.Contains("repeat a key", StringComparison.Ordinal));
        Assert.Equal(1.0, Metric(before.Where(r => r.WindowStart.Day == 2), "accuracy"));
        Assert.Equal(before.Where(r => r.WindowStart.Day == 2), after.Where(r => r.WindowStart.Day == 2));
        Assert.Equal((0L, 0.0), before.Where(r => r.WindowStart.Day == 3).Select(r => (r.NLabeled, r.Coverage)).Distinct().Single());
        Assert.Equal((1L, 1.0, 0.0), after.Where(r => r.WindowStart.Day == 3 && r.Metric == "accuracy").Select(r => (r.NLabeled, r.Coverage, r.Value!.Value)).Single());
        Assert.Equal(before, then);
    }

    private async Task<(IReadOnlyList<Row> Rows, IReadOnlyList<string> Notices)> PerformanceWithNoticesAsync(string name)
    {
        var notices = new List<string>();
        await using var connection = await Database.DataSource.OpenConnectionAsync(Ct);
        connection.Notice += (_, e) => notices.Add(e.Notice.MessageText);
        var rows = await connection.QueryAsync<Row>(
            $"SELECT window_start AS WindowStart, version AS Version, arm AS Arm, metric AS Metric, value AS Value, n_labeled AS NLabeled, coverage AS Coverage FROM mad.performance('{name}')");
        return (rows.ToList(), notices);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_source_unique_on_the_key_is_graded_by_one_join_with_the_same_metrics_and_notices()
    {
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        // The ECE and CBPE goldens' windows, a label observed before its key was scored and one of a key never served
        // (both grade nothing), and an unlabelled key.
        await OutcomeTables.ServeAsync(Database.DataSource, name, Values(Enumerable.Range(0, 200).Select(i =>
            $"('{1000 + i}', 1, 'champion', '{OutcomeTables.Binary(i < 100 ? 0.2 : 0.8)}', '2026-11-03 10:00+00')")
            .Concat(new[] { 0.9, 0.8, 0.3, 0.1 }.Select((p, i) => $"('{2000 + i}', 2, 'canary', '{OutcomeTables.Binary(p)}', '2026-11-03 11:00+00')"))
            .Append($"('3000', 1, 'champion', '{OutcomeTables.Binary(0.7)}', '2026-11-04 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{outcomes} SELECT 1000 + g, CASE WHEN g < 30 OR (g >= 100 AND g < 170) THEN '1' ELSE '0' END, '2026-11-03 12:00+00'
            FROM generate_series(0, 199) g;
            INSERT INTO public.{outcomes} VALUES (2000, '1', '2026-11-03 12:00+00'), (2001, '0', '2026-11-03 12:00+00'),
                                                 (3000, '1', '2026-11-04 09:00+00'), (4000, '0', '2026-11-04 12:00+00');
            """);
        var general = await PerformanceWithNoticesAsync(name);

        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{outcomes} ADD PRIMARY KEY (id)");
        var once = await Database.DataSource.ScalarAsync<bool>($"SELECT mad.source_unique_on('public.{outcomes}', '{{id}}') AND mad.served_once('{name}')");
        var unique = await PerformanceWithNoticesAsync(name);
        // Served again after its label: the general path, which grades the first prediction only.
        await OutcomeTables.ServeAsync(Database.DataSource, name, $"('1000', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-11-03 13:00+00')");
        var twice = await Database.DataSource.ScalarAsync<bool>($"SELECT mad.served_once('{name}')");
        var again = await PerformanceWithNoticesAsync(name);

        Assert.True(once);
        Assert.Equal(general.Notices, unique.Notices);
        Assert.Contains(unique.Notices, n => n.StartsWith("2 outcome(s)", StringComparison.Ordinal) && n.Contains("match no prediction", StringComparison.Ordinal));
        Assert.Equal(general.Rows.Select(r => r with { Value = null }), unique.Rows.Select(r => r with { Value = null }));
        Assert.All(general.Rows.Zip(unique.Rows), p => Assert.Equal(p.First.Value ?? double.NaN, p.Second.Value ?? double.NaN, 1e-12));
        var champion = unique.Rows.Where(r => r.WindowStart.Day == 3 && r.Arm == "champion").ToList();
        Assert.Equal(0.10, Metric(champion, "ece")!.Value, 9);
        Assert.Equal(0.70, Metric(champion, "roc_auc")!.Value, 9);
        Assert.Equal((2L, 0.5), unique.Rows.Where(r => r.Arm == "canary").Select(r => (r.NLabeled, r.Coverage)).Distinct().Single());
        Assert.Equal((0L, 0.0), unique.Rows.Where(r => r.WindowStart.Day == 4).Select(r => (r.NLabeled, r.Coverage)).Distinct().Single());
        Assert.False(twice);
        var served = again.Rows.Where(r => r.WindowStart.Day == 3 && r.Arm == "champion").ToList();
        Assert.Equal((200L, 200.0 / 201), served.Select(r => (r.NLabeled, r.Coverage)).Distinct().Single());
        Assert.Equal(0.70, Metric(served, "roc_auc")!.Value, 9);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_week_window_starts_on_monday_and_a_regressor_gets_mae_rmse_mape_and_mean_error()
    {
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource, labelType: "double precision");
        await OutcomeTables.ServeAsync(Database.DataSource, name, Values(new[] { 3.0, 5.0, 2.0, 8.0 }.Select((v, i) =>
            FormattableString.Invariant($$"""('{{i + 1}}', 2, 'canary', '{"variable": {{v}}}', '2026-11-0{{4 + i}} 10:00+00')"""))));
        // Truth 2.5, 5, 4, 8: errors 0.5, 0, -2, 0 (scikit-learn's y_pred − y_true sign for mean_error).
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (1, 2.5, '2026-11-09'), (2, 5, '2026-11-09'), (3, 4, '2026-11-09'), (4, 8, '2026-11-09')");

        var rows = await PerformanceAsync(name, ", \"window\" => '7 days'");

        Assert.Equal(["mae", "rmse", "mape", "mean_error"], rows.Select(r => r.Metric));
        Assert.All(rows, r => Assert.Equal((new DateTime(2026, 11, 2, 0, 0, 0, DateTimeKind.Utc), 2, "canary", 4L, 1.0), (r.WindowStart, r.Version, r.Arm, r.NLabeled, r.Coverage)));
        Assert.Equal(0.625, Metric(rows, "mae")!.Value, 9);
        Assert.Equal(Math.Sqrt(4.25 / 4), Metric(rows, "rmse")!.Value, 9);
        Assert.Equal((0.5 / 2.5 + 2.0 / 4) / 4, Metric(rows, "mape")!.Value, 9);
        Assert.Equal(-0.375, Metric(rows, "mean_error")!.Value, 9);
    }

    [Fact(Timeout = 60_000)]
    public async Task Labels_the_model_cannot_be_compared_with_fail_with_a_message()
    {
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        await OutcomeTables.ServeAsync(Database.DataSource, name, $"('1', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-11-02 10:00+00')");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (1, 'churned', '2026-11-02 12:00+00')");
        var regressor = await OutcomeTables.CreateAsync(Database.DataSource);
        await OutcomeTables.ServeAsync(Database.DataSource, regressor.Name, """('1', 1, 'champion', '{"variable": 1.5}', '2026-11-02 10:00+00')""");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{regressor.Outcomes} VALUES (1, 'high', '2026-11-02 12:00+00')");

        var classes = await Database.DataSource.FailsAsync($"SELECT * FROM mad.performance('{name}')");
        var numbers = await Database.DataSource.FailsAsync($"SELECT * FROM mad.performance('{regressor.Name}')");
        var unbound = await Database.DataSource.FailsAsync($"SELECT mad.set_outcomes('{name}', 'public.{outcomes}', '{{id}}', 'nope', 'observed_at')");
        var month = await Database.DataSource.FailsAsync($"SELECT * FROM mad.performance('{name}', \"window\" => '1 month')");

        Assert.Equal(PostgresErrorCodes.DatatypeMismatch, classes.SqlState);
        Assert.Contains("'churned'", classes.MessageText, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.DatatypeMismatch, numbers.SqlState);
        Assert.Contains("not numbers", numbers.MessageText, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.UndefinedColumn, unbound.SqlState);
        Assert.Equal(PostgresErrorCodes.InvalidParameterValue, month.SqlState);
    }
}

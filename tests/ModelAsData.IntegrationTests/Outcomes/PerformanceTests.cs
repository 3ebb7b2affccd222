using System.Globalization;
using System.Text;
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
}

using System.Globalization;
using ModelAsData.Core.Monitoring;
using ModelAsData.Postgres.Monitoring;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// Both stores give the same numbers on the same rows: PostgreSQL's mad.performance and mad.compare against the
/// embedded store's in-process grading, over served histories and labels made to hit every rule at once (re-scored
/// keys, late and duplicate labels, labels grading nothing, ties in scores, several windows, versions and arms).
/// </summary>
public sealed class OutcomeStoresTests(PostgresDatabase database) : DatabaseTests(database)
{
    private static string Values(IEnumerable<string> rows) => string.Join(", ", rows);

    private static string At(DateTime at) => at.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "+00";

    /// <summary>
    /// Served rows and labels: keys 0–599 over three days, half on each arm; keys below 60 scored again a day later;
    /// 80 % labelled some hours after the first score; keys 100–119 labelled twice; keys 600–609 labelled, never served.
    /// </summary>
    private static (string Served, string Labels) Rows(Func<Random, string> outputs, Func<Random, string, string> label)
    {
        var random = new Random(17);
        var served = new List<string>();
        var labels = new List<string>();
        var start = new DateTime(2026, 11, 2, 0, 0, 0, DateTimeKind.Utc);
        for (var key = 0; key < 610; key++)
        {
            var scored = start.AddHours(random.Next(0, 72)).AddMinutes(random.Next(0, 60));
            var (version, arm) = key % 2 == 0 ? (1, "champion") : (2, "canary");
            var first = outputs(random);
            if (key < 600)
            {
                served.Add($"('{key}', {version}, '{arm}', '{first}', '{At(scored)}')");
            }

            if (key < 60)
            {
                served.Add($"('{key}', {version}, '{arm}', '{outputs(random)}', '{At(scored.AddDays(1))}')");
            }

            if (random.NextDouble() < 0.8 || key >= 600)
            {
                labels.Add($"({key}, {label(random, first)}, '{At(scored.AddHours(random.Next(0, 48)))}')");
            }

            if (key is >= 100 and < 120)
            {
                labels.Add($"({key}, {label(random, first)}, '{At(scored.AddMinutes(-30))}')");
            }
        }

        return (Values(served), Values(labels));
    }

    private static string Binary(Random random) => OutcomeTables.Binary(Math.Round(random.NextDouble(), 1));

    private static string BinaryLabel(Random random, string outputs) =>
        random.NextDouble() < double.Parse(outputs.Split("\"probability_1\": ")[1].TrimEnd('}'), CultureInfo.InvariantCulture) ? "'1'" : "'0'";

    private static string ThreeClasses(Random random)
    {
        var p = new[] { random.NextDouble(), random.NextDouble(), random.NextDouble() };
        var sum = p.Sum();
        var q = p.Select(x => Math.Round(x / sum, 2)).ToArray();
        var label = Array.IndexOf(q, q.Max());
        return FormattableString.Invariant($$"""{"label": "{{label}}", "probability_0": {{q[0]}}, "probability_1": {{q[1]}}, "probability_2": {{q[2]}}}""");
    }

    private static string ClassLabel(Random random, string outputs) => random.NextDouble() < 0.6 ? $"'{outputs.Split("\"label\": \"")[1][0]}'" : $"'{random.Next(0, 3)}'";

    private static string Regressor(Random random) => FormattableString.Invariant($$"""{"variable": {{Math.Round(random.NextDouble() * 10, 3)}}}""");

    private static string Truth(Random random, string outputs) => random.NextDouble() < 0.05 ? "0"
        : (double.Parse(outputs.Split(": ")[1].TrimEnd('}'), CultureInfo.InvariantCulture) + Math.Round(random.NextDouble() - 0.4, 3)).ToString("R", CultureInfo.InvariantCulture);

    public static TheoryData<string, string> Models => new()
    {
        { "binary", "text" },
        { "three classes", "text" },
        { "regressor", "double precision" },
    };

    [Theory(Timeout = 180_000)]
    [MemberData(nameof(Models))]
    public async Task Performance_gives_the_same_rows_and_notices_on_both_stores(string kind, string labelType)
    {
        var (name, _, outcomes, model) = await OutcomeTables.CreateAsync(Database.DataSource, labelType);
        var (served, labels) = kind switch
        {
            "binary" => Rows(Binary, BinaryLabel),
            "three classes" => Rows(ThreeClasses, ClassLabel),
            _ => Rows(Regressor, Truth),
        };
        await OutcomeTables.ServeAsync(Database.DataSource, name, served);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES {labels}");
        await using var twin = await SqliteTwin.CreateAsync(model);
        await twin.CopyAsync(Database.DataSource, name, outcomes, model);
        IOutcomeReports postgres = new PostgresOutcomeReports(Database.DataSource), sqlite = new SqliteOutcomeReports(twin.Registry);

        foreach (var (window, asOf) in new (TimeSpan, DateTimeOffset?)[]
                 {
                     (TimeSpan.FromDays(1), null), (TimeSpan.FromHours(12), null), (TimeSpan.FromDays(7), null),
                     (TimeSpan.FromDays(1), new DateTimeOffset(2026, 11, 3, 12, 0, 0, TimeSpan.Zero)),
                 })
        {
            var expected = await postgres.PerformanceAsync(name, window, asOf, cancellationToken: Ct);
            var actual = await sqlite.PerformanceAsync(name, window, asOf, cancellationToken: Ct);

            Assert.NotEmpty(expected.Rows);
            Assert.Contains(expected.Rows, r => r.Value is not null && r.NLabeled > 0);
            // PostgreSQL names the source with its schema; a SQLite file has none.
            Assert.Equal(expected.Notices.Select(n => n.Replace($"public.{outcomes}", outcomes, StringComparison.Ordinal)), actual.Notices);
            Assert.Equal(expected.Rows.Select(r => (r.WindowStart, r.WindowEnd, r.Version, r.Arm, r.Metric, r.NLabeled)),
                actual.Rows.Select(r => (r.WindowStart, r.WindowEnd, r.Version, r.Arm, r.Metric, r.NLabeled)));
            foreach (var (e, a) in expected.Rows.Zip(actual.Rows))
            {
                Assert.Equal(e.Coverage, a.Coverage, 12);
                Assert.True(e.Value is null == a.Value is null, $"{e.Metric} of {e.WindowStart:u} {e.Arm}: {e.Value} on PostgreSQL, {a.Value} on SQLite");
                if (e.Value is { } v)
                {
                    // Sums in another order: equal to 1e-9, relative where a value is large (mape over a truth of 0).
                    Assert.True(Math.Abs(v - a.Value!.Value) <= 1e-9 * Math.Max(1, Math.Abs(v)), $"{e.Metric} of {e.WindowStart:u} {e.Arm}: {v} on PostgreSQL, {a.Value} on SQLite");
                }
            }
        }

        Assert.Contains(await postgres.PerformanceAsync(name, TimeSpan.FromDays(1), null, cancellationToken: Ct) is var all ? all.Notices : [],
            n => n.Contains("repeat a key", StringComparison.Ordinal));
    }

    [Fact(Timeout = 180_000)]
    public async Task The_goldens_of_issue_17_hold_on_sqlite()
    {
        var (name, _, outcomes, model) = await OutcomeTables.CreateAsync(Database.DataSource);
        await OutcomeTables.ServeAsync(Database.DataSource, name, Values(new[] { 0.9, 0.2, 0.6 }.Select((p, i) =>
            $"('{i + 1}', 1, 'champion', '{OutcomeTables.Binary(p)}', '2026-11-02 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (1, '1', '2026-11-02 12:00+00'), (2, '0', '2026-11-02 12:00+00'), (3, '0', '2026-11-02 12:00+00')");
        await OutcomeTables.ServeAsync(Database.DataSource, name, Values(Enumerable.Range(0, 200).Select(i =>
            $"('{1000 + i}', 1, 'champion', '{OutcomeTables.Binary(i < 100 ? 0.2 : 0.8)}', '2026-11-03 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{outcomes} SELECT 1000 + g, CASE WHEN g < 30 OR (g >= 100 AND g < 170) THEN '1' ELSE '0' END, '2026-11-03 12:00+00'
            FROM generate_series(0, 199) g
            """);
        await OutcomeTables.ServeAsync(Database.DataSource, name, Values(new[] { 0.9, 0.8, 0.3, 0.1 }.Select((p, i) =>
            $"('{2000 + i}', 1, 'champion', '{OutcomeTables.Binary(p)}', '2026-11-04 10:00+00')")));
        await using var twin = await SqliteTwin.CreateAsync(model);
        await twin.CopyAsync(Database.DataSource, name, outcomes, model);

        var rows = (await new SqliteOutcomeReports(twin.Registry).PerformanceAsync(name, TimeSpan.FromDays(1), null, cancellationToken: Ct)).Rows;

        double Metric(int day, string metric) => rows.Single(r => r.WindowStart.Day == day && r.Metric == metric).Value!.Value;
        Assert.Equal(0.4149, Metric(2, "log_loss"), 4);
        Assert.Equal(0.10, Metric(3, "ece"), 9);
        Assert.Equal(0.70, Metric(3, "roc_auc"), 9);
        Assert.Equal(0.825, Metric(4, "cbpe_accuracy"), 9);
        Assert.All(rows.Where(r => r.WindowStart.Day == 4), r => Assert.Equal((0L, 0.0), (r.NLabeled, r.Coverage)));
    }

    [Theory(Timeout = 180_000)]
    [InlineData(160, null)]
    [InlineData(100, "log_loss")]
    [InlineData(125, "precision")]
    public async Task Compare_gives_the_same_rows_on_both_stores(int canaryRight, string? metric)
    {
        var (model, name, outcomes) = await CompareTests.DeployedAsync(Database, canaryRight);
        // A champion's month alone before the canary (every label wrong): neither store counts it.
        await OutcomeTables.ServeAsync(Database.DataSource, name, string.Join(", ", Enumerable.Range(10_000, 500).Select(i =>
            $"('{i}', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-10-01 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} SELECT g, '0', '2026-10-01 12:00+00' FROM generate_series(10000, 10499) g");
        await using var twin = await SqliteTwin.CreateAsync(model, canary: (2, 50), deployedAt: CompareTests.DeployedAt);
        await twin.CopyAsync(Database.DataSource, name, outcomes, model);
        IOutcomeReports postgres = new PostgresOutcomeReports(Database.DataSource), sqlite = new SqliteOutcomeReports(twin.Registry);

        foreach (var horizon in new long[] { 100, 1000 })
        {
            var expected = await postgres.CompareAsync(model, "production", metric, horizon, Ct);
            var actual = await sqlite.CompareAsync(model, "production", metric, horizon, Ct);

            Assert.Equal(2, expected.Rows.Count);
            Assert.Equal((200L, 200L), (expected.Rows[0].N!.Value, expected.Rows[1].N!.Value));
            Assert.Contains(expected.Notices, n => n.StartsWith("Counted only predictions scored since 2026-11-01T00:00:00Z", StringComparison.Ordinal));
            Assert.Equal(expected.Notices, actual.Notices);
            // When the split began, which the compare report's plot counts from: the same on both stores.
            Assert.Equal((DateTimeOffset?)new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero), expected.Since);
            Assert.Equal(expected.Since, actual.Since);
            Assert.Equal(expected.Rows.Select(r => (r.PredictionTable, r.Arm, r.Version, r.N, r.NLabeled, r.Metric, r.Test, r.SampleRatioMismatch, r.Significant, r.Verdict)),
                actual.Rows.Select(r => (r.PredictionTable, r.Arm, r.Version, r.N, r.NLabeled, r.Metric, r.Test, r.SampleRatioMismatch, r.Significant, r.Verdict)));
            foreach (var (e, a) in expected.Rows.Zip(actual.Rows))
            {
                foreach (var (x, y) in new[] { (e.Value, a.Value), (e.Difference, a.Difference), (e.CiLow, a.CiLow), (e.CiHigh, a.CiHigh), (e.Statistic, a.Statistic),
                             (e.PValue, a.PValue), (e.SampleRatioChiSquare, a.SampleRatioChiSquare), (e.SampleRatioPValue, a.SampleRatioPValue) })
                {
                    Assert.True(x is null == y is null, $"{e.Arm}: {x} on PostgreSQL, {y} on SQLite");
                    if (x is { } v)
                    {
                        Assert.Equal(v, y!.Value, 9);
                    }
                }
            }
        }

        var unknown = await Assert.ThrowsAsync<Core.ModelAsDataException>(() => sqlite.CompareAsync(model, "production", "accurracy", 1000, Ct));
        Assert.Contains("There is no metric 'accurracy'", unknown.Message, StringComparison.Ordinal);
        foreach (var store in new[] { postgres, sqlite })
        {
            var noAlias = await Assert.ThrowsAsync<Core.ModelAsDataException>(() => store.CompareAsync(model, "staging", null, 1000, Ct));
            Assert.Contains($"Model '{model}' has no alias 'staging'", noAlias.Message, StringComparison.Ordinal);
        }
    }
}

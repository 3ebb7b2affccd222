using System.Text.RegularExpressions;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// <c>mad monitor performance</c> and <c>mad monitor compare</c> through the real parser, on a SQLite file and on
/// PostgreSQL, with their HTML reports opened in real headless Chromium: what a person reads in the terminal and sees
/// in the browser.
/// </summary>
public sealed class OutcomeCliTests(PostgresDatabase database) : MadCliTests(database)
{
    private static string Iris => Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx");

    private static string Rotated => Path.Combine(AppContext.BaseDirectory, "TestData", "rf_iris_rotated.onnx");

    /// <summary>A row of the terminal table: the cells given, in order, separated by the table's bars.</summary>
    private static Regex Row(params string[] cells) => new(string.Join(@"\s*│\s*", cells.Select(Regex.Escape)) + @"\s*│");

    [Fact(Timeout = 300_000)]
    public async Task On_sqlite_a_label_grades_what_was_served_after_a_rescore_and_compare_reports_a_worse_canary()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mad-outcomes-{Guid.NewGuid():N}.db");
        var (perf, cmp) = (Path.ChangeExtension(path, ".perf.html"), Path.ChangeExtension(path, ".cmp.html"));
        try
        {
            await using (var registry = await SqliteModelRegistry.OpenAsync(path, Ct))
            {
                await registry.Connection.ExecuteAsync("""
                    CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL);
                    WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 300)
                    INSERT INTO flowers SELECT i, 4.3 + (i % 37) * 0.1, 2.0 + (i % 23) * 0.1, 1.0 + (i % 59) * 0.1, 0.1 + (i % 25) * 0.1 FROM g;
                    CREATE TABLE events (id INTEGER, label TEXT, observed_at TEXT);
                    CREATE TABLE split_events (id INTEGER, label TEXT, observed_at TEXT);
                    CREATE TABLE words (id INTEGER, label TEXT, observed_at TEXT);
                    """);
            }

            Assert.Equal(0, (await RunWithDbAsync(path, "models", "push", "iris", Iris)).ExitCode);
            Assert.Equal(0, (await RunWithDbAsync(path, "models", "push", "iris", Rotated)).ExitCode);
            Assert.Equal(0, (await RunWithDbAsync(path, "deploy", "iris", "production", "--version", "1")).ExitCode);
            // worded is served by iris@1, not through production: mad monitor compare iris production leaves it out.
            foreach (var (table, reference, source) in new[] { ("scores", "iris", "events"), ("other", "iris", (string?)null), ("worded", "iris@1", "words") })
            {
                Assert.Equal(0, (await RunWithDbAsync(path, "tables", "create", table, "--model", reference, "--source", "flowers", "--key", "id", "--features", BatchTables.IrisFeatures)).ExitCode);
                if (source is not null)
                {
                    Assert.Equal(0, (await RunWithDbAsync(path, "outcomes", "set", table, "--source", source, "--key", "id", "--label", "label", "--observed-at", "observed_at")).ExitCode);
                }
            }

            var before = await RunWithDbAsync(path, "monitor", "performance", "scores");
            Assert.Equal(0, (await RunWithDbAsync(path, "tables", "refresh", "scores")).ExitCode);
            // Labels for two keys in three, observed as they were scored: right but for keys divisible by 5; key 1 also
            // has an older wrong label, and key 99999 grades nothing.
            await ExecuteAsync(path, """
                INSERT INTO events SELECT id, CASE WHEN id % 5 = 0 THEN (label + 1) % 3 ELSE label END, scored_at FROM mad_out_scores WHERE id % 3 <> 0;
                INSERT INTO events VALUES (1, '2', '2020-01-01T00:00:00Z'), (99999, '1', '2030-01-01');
                """);
            // Version 2 re-scores every key: the labels were observed before, so they still grade version 1's predictions.
            Assert.Equal(0, (await RunWithDbAsync(path, "deploy", "iris", "production", "--version", "2")).ExitCode);
            Assert.Equal(0, (await RunWithDbAsync(path, "tables", "refresh", "scores")).ExitCode);
            var performance = await RunWithDbAsync(path, "monitor", "performance", "scores", "--window", "1w", "--html", perf);
            var then = await RunWithDbAsync(path, "monitor", "performance", "scores", "--as-of", "2020-06-01");
            var badWindow = await RunWithDbAsync(path, "monitor", "performance", "scores", "--window", "90m");
            var badTime = await RunWithDbAsync(path, "monitor", "performance", "scores", "--as-of", "yesterday");
            var unbound = await RunWithDbAsync(path, "monitor", "performance", "other");
            Assert.Equal(0, (await RunWithDbAsync(path, "tables", "refresh", "worded")).ExitCode);
            await ExecuteAsync(path, "INSERT INTO words SELECT id, 'churned', scored_at FROM mad_out_worded");
            var worded = await RunWithDbAsync(path, "monitor", "performance", "worded");

            Assert.Equal((0, true), (before.ExitCode, before.Output.Contains("No predictions of scores were served: nothing to grade yet.", StringComparison.Ordinal)));
            Assert.Equal(0, performance.ExitCode);
            Assert.Contains("1 outcome(s) of events repeat a key: the latest observation of each key is used.", performance.Output, StringComparison.Ordinal);
            Assert.Contains("1 outcome(s) of events match no prediction of scores", performance.Output, StringComparison.Ordinal);
            Assert.Matches(Row("1", "champion", "200", "66.7%", "0.8"), performance.Output);   // 160 right of 200 labelled, 300 scored
            Assert.Matches(Row("2", "champion", "0", "0%", "–"), performance.Output);
            Assert.Contains("window (7 days) from", performance.Output, StringComparison.Ordinal);
            Assert.Contains("No predictions of scores were served by 2020-06-01", then.Output, StringComparison.Ordinal);
            Assert.Contains("A window is a number of hours or days", badWindow.Output, StringComparison.Ordinal);
            Assert.Contains("--as-of takes a date or time in ISO 8601", badTime.Output, StringComparison.Ordinal);
            Assert.NotEqual(0, unbound.ExitCode);
            Assert.Contains("Prediction table 'other' has no outcomes bound. Bind them: mad outcomes set other --source TABLE --key id", unbound.Output, StringComparison.Ordinal);
            Assert.NotEqual(0, worded.ExitCode);
            Assert.Contains("No label in column label of words is one of the classes of worded's model (labels such as 'churned', classes such as '0'", worded.Output, StringComparison.Ordinal);

            var report = await File.ReadAllTextAsync(perf, Ct);
            Assert.DoesNotContain("<script", report, StringComparison.Ordinal);
            Assert.DoesNotContain("http://", report.Replace("http://www.w3.org/", "", StringComparison.Ordinal), StringComparison.Ordinal);
            var seen = await OutcomeReportBrowser.OpenAsync(perf);
            Assert.Equal((9, 9), (seen.Plots, seen.Drawn)); // eight metrics and coverage, each with its points drawn
            Assert.Equal(["version 1 champion", "version 2 champion"], seen.Legends);
            Assert.Equal(["1", "champion", "200", "66.7%", "0.8"], seen.Table.Single(r => r[1] == "1").Skip(1).Take(5));
            Assert.Equal(["2", "champion", "0", "0%", "–"], seen.Table.Single(r => r[1] == "2").Skip(1).Take(5));

            // Champion against canary: a table created under a 50 % canary; the canary is wrong on even keys.
            Assert.Equal(0, (await RunWithDbAsync(path, "deploy", "iris", "production", "--version", "1")).ExitCode);
            Assert.Equal(0, (await RunWithDbAsync(path, "deploy", "iris", "production", "--canary", "2", "--percent", "50")).ExitCode);
            // A fixed seed for the split: a new canary draws one, and one draw in a thousand is a split the sample-ratio check flags.
            await ExecuteAsync(path, "UPDATE mad_deployments SET seed = 1");
            Assert.Equal(0, (await RunWithDbAsync(path, "tables", "create", "split", "--model", "iris", "--source", "flowers", "--key", "id", "--features", BatchTables.IrisFeatures)).ExitCode);
            Assert.Equal(0, (await RunWithDbAsync(path, "outcomes", "set", "split", "--source", "split_events", "--key", "id", "--label", "label", "--observed-at", "observed_at")).ExitCode);
            Assert.Equal(0, (await RunWithDbAsync(path, "tables", "refresh", "split")).ExitCode);
            await ExecuteAsync(path, "INSERT INTO split_events SELECT id, CASE WHEN arm = 'canary' AND id % 2 = 0 THEN (label + 1) % 3 ELSE label END, scored_at FROM mad_out_split");
            var compare = await RunWithDbAsync(path, "monitor", "compare", "iris", "production", "--horizon", "50", "--html", cmp);
            var interim = await RunWithDbAsync(path, "monitor", "compare", "iris", "production");
            var unknown = await RunWithDbAsync(path, "monitor", "compare", "iris", "production", "--metric", "accurracy");
            var noAlias = await RunWithDbAsync(path, "monitor", "compare", "iris", "staging");

            Assert.Equal(3, compare.ExitCode); // the canary is worse
            Assert.Matches(Row("split", "champion", "1"), compare.Output);
            Assert.Matches(Row("split", "canary", "2"), compare.Output);
            Assert.Contains("two-proportion z", compare.Output, StringComparison.Ordinal);
            Assert.Contains("canary significantly worse", compare.Output, StringComparison.Ordinal);
            Assert.Equal(0, interim.ExitCode);
            Assert.Contains("interim:", interim.Output, StringComparison.Ordinal);
            Assert.Contains("below the horizon of 1000 per arm; do not act on the p-value yet", interim.Output, StringComparison.Ordinal);
            Assert.Contains("There is no metric 'accurracy'", unknown.Output, StringComparison.Ordinal);
            Assert.Contains("Model 'iris' has no alias 'staging'", noAlias.Output, StringComparison.Ordinal);
            var compared = await OutcomeReportBrowser.OpenAsync(cmp);
            // Only what was served under the current split counts: scores served nothing since the canary began (its
            // rows are version 1's and 2's from before), so only split is compared, and the output says from when.
            Assert.DoesNotMatch(Row("scores", "champion", "1"), compare.Output);
            Assert.Contains("Counted only predictions scored since ", compare.Output, StringComparison.Ordinal);
            Assert.Contains("when iris@production began serving version 1 with version 2 on 50 % as the canary", compare.Output, StringComparison.Ordinal);
            Assert.Equal((2, 2), (compared.Plots, compared.Drawn)); // accuracy and coverage per window, for split
            Assert.Equal(["version 1 champion", "version 2 canary"], compared.Legends);
            Assert.Contains("canary significantly worse", compared.Table.Single(r => r[1] == "canary")[^1], StringComparison.Ordinal);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var file in new[] { path, path + "-wal", path + "-shm", perf, cmp })
            {
                File.Delete(file);
            }
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task On_postgres_the_verbs_read_mad_performance_and_mad_compare_and_their_reports_render()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        var (perf, cmp) = (Path.Combine(Path.GetTempPath(), $"{name}.perf.html"), Path.Combine(Path.GetTempPath(), $"{name}.cmp.html"));
        try
        {
            Assert.Equal(0, (await RunAsync("tables", "refresh", name, "--wait")).ExitCode);
            await Database.DataSource.ExecuteAsync($"""
                INSERT INTO public.{outcomes} SELECT id, CASE WHEN id % 5 = 0 THEN ((label::int + 1) % 3)::text ELSE label::text END, scored_at FROM mad_out.{name}
                """);
            var performance = await RunAsync("monitor", "performance", name, "--window", "1w", "--html", perf);
            var (model, split, splitOutcomes) = await CompareTests.DeployedAsync(Database, canaryRight: 160);
            // The champion's October, before the canary began: not counted by the table, so not plotted either.
            await OutcomeTables.ServeAsync(Database.DataSource, split, string.Join(", ", Enumerable.Range(10_000, 50).Select(i =>
                $"('{i}', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-10-01 10:00+00')")));
            await Database.DataSource.ExecuteAsync($"INSERT INTO public.{splitOutcomes} SELECT g, '0', '2026-10-01 12:00+00' FROM generate_series(10000, 10049) g");
            var better = await RunAsync("monitor", "compare", model, "production", "--horizon", "100", "--html", cmp);
            var (worseModel, _, _) = await CompareTests.DeployedAsync(Database, canaryRight: 60);
            var worse = await RunAsync("monitor", "compare", worseModel, "production", "--horizon", "100", "--metric", "log_loss");
            var missing = await RunAsync("monitor", "performance", "no_such_table");

            Assert.Equal(0, performance.ExitCode);
            Assert.Matches(Row("1", "champion", "10", "100%", "0.8"), performance.Output); // 8 right of 10
            var seen = await OutcomeReportBrowser.OpenAsync(perf);
            Assert.Equal((9, 9), (seen.Plots, seen.Drawn));
            Assert.Equal(["version 1 champion"], seen.Legends);
            Assert.Equal(0, better.ExitCode);
            Assert.Contains("canary significantly better", better.Output, StringComparison.Ordinal);
            Assert.Matches(Row("champion", "1", "200", "200", "accuracy", "0.6"), better.Output);
            Assert.Matches(Row("canary", "2", "200", "200", "accuracy", "0.8", "0.2"), better.Output);
            var compared = await OutcomeReportBrowser.OpenAsync(cmp);
            Assert.Equal((2, 2), (compared.Plots, compared.Drawn));
            Assert.Equal(["version 1 champion", "version 2 canary"], compared.Legends);
            // One point per arm, 2 November, the one window served since the split, and the legend's two markers
            // (October's champion point, which the table does not count, made five).
            Assert.Equal(new Dictionary<string, int> { ["accuracy"] = 4, ["coverage"] = 4 }, compared.Marks);
            Assert.Equal(3, worse.ExitCode);
            Assert.Contains("welch t", worse.Output, StringComparison.Ordinal);
            Assert.Contains("canary significantly worse", worse.Output, StringComparison.Ordinal);
            Assert.NotEqual(0, missing.ExitCode);
            Assert.Contains("no_such_table", missing.Output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(perf);
            File.Delete(cmp);
        }
    }

    private static async Task ExecuteAsync(string path, string sql)
    {
        await using var connection = await SqliteDatabase.OpenAsync(path, Ct);
        await connection.ExecuteAsync(sql);
    }
}

using System.CommandLine;
using System.Globalization;
using ModelAsData.Cli.Reports;
using ModelAsData.Core.Monitoring;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad monitor performance | compare</c> (issue 17): what the outcomes say of the served predictions, per window,
/// version and arm, and champion against canary; mad.performance's and mad.compare's rows on PostgreSQL, the same
/// computed in-process on a SQLite file.
/// </summary>
internal static class MonitorOutcomeCommands
{
    public static Command Performance(CliContext cli)
    {
        var table = new Argument<string>("table") { Description = "The prediction table whose outcomes are bound (mad outcomes set), e.g. churn_scores; or a model's online requests, online:churn (PostgreSQL, mad_admin)." };
        var window = new Option<string>("--window") { Description = "The window length: whole hours, days or weeks, e.g. 12h, 1d, 1w (weeks start on Monday, UTC).", DefaultValueFactory = _ => "1d" };
        var asOf = new Option<string?>("--as-of") { Description = "What was known then: only predictions scored and labels observed by this time (ISO 8601, UTC unless an offset is given)." };
        var html = new Option<FileInfo?>("--html") { Description = "Also write a self-contained HTML report with a plot per metric and one of coverage to this file." };
        var device = DeviceScope.Option();
        var command = new Command("performance",
            "Metrics of a prediction table's served predictions against their outcomes, per window, version and arm, with coverage (the share of scored rows labelled). " +
            "Classifiers: accuracy, precision, recall, f1, roc_auc, log_loss, ece, cbpe_accuracy; regressors: mae, rmse, mape, mean_error.")
        {
            table, window, asOf, html, device,
        };
        cli.SetAction(command, async (parse, ct) =>
        {
            var length = MonitorCommand.ParseWindow(parse.GetValue(window)!);
            var at = ExportCommand.ParseTime(parse.GetValue(asOf), "--as-of");
            var name = parse.GetValue(table)!;
            await using var store = await MadStore.OpenAsync(DeviceScope.Apply(cli.RequireDb(parse), parse.GetValue(device)), ct);
            var report = await store.Outcomes.PerformanceAsync(name, length, at, cancellationToken: ct);
            PrintNotices(cli.Console, report.Notices);
            if (report.Rows.Count == 0)
            {
                cli.Console.MarkupLineInterpolated($"No predictions of {name} were served{(at is { } a ? $" by {a.UtcDateTime:u}" : "")}: nothing to grade yet.");
            }
            else
            {
                PrintPerformance(cli.Console, report.Rows);
            }

            if (parse.GetValue(html) is { } file)
            {
                await File.WriteAllTextAsync(file.FullName, OutcomeReport.RenderPerformance(name, length, at, report), ct);
                cli.Console.MarkupLineInterpolated($"Wrote the report to [bold]{file.FullName}[/].");
            }

            return 0;
        });
        return command;
    }

    public static Command Compare(CliContext cli)
    {
        var model = new Argument<string>("model") { Description = "The model, e.g. churn." };
        var alias = new Argument<string>("alias") { Description = "The alias whose deployment splits champion and canary, e.g. production." };
        var metric = new Option<string?>("--metric") { Description = "The metric to compare: accuracy, precision, recall (z-test), log_loss, mae, mape, mean_error (Welch's t), or any other of mad monitor performance's (no test). Default: accuracy, or mae for a regressor." };
        var horizon = new Option<long>("--horizon") { Description = "Labelled rows each arm needs before a verdict other than 'interim' (fix it before the experiment: looking early and often inflates false alarms).", DefaultValueFactory = _ => 1000 };
        var window = new Option<string>("--window") { Description = "The window of the HTML report's per-window plot, e.g. 1d, over the rows the comparison counts (scored since the current split began).", DefaultValueFactory = _ => "1d" };
        var html = new Option<FileInfo?>("--html") { Description = "Also write a self-contained HTML report with the comparison and the arms' metric per window to this file." };
        var device = DeviceScope.Option();
        var command = new Command("compare",
            "Champion against canary of model@alias on outcomes, per prediction table served through it: each arm's metric, the difference with a 95 % interval and p-value, " +
            "the sample-ratio check against the deployment's percent, and a verdict. Exits 3 when the canary is significantly worse or the split is broken.")
        {
            model, alias, metric, horizon, window, html, device,
        };
        cli.SetAction(command, async (parse, ct) =>
        {
            var length = MonitorCommand.ParseWindow(parse.GetValue(window)!);
            var (name, aliasName) = (parse.GetValue(model)!, parse.GetValue(alias)!);
            await using var store = await MadStore.OpenAsync(DeviceScope.Apply(cli.RequireDb(parse), parse.GetValue(device)), ct);
            var report = await store.Outcomes.CompareAsync(name, aliasName, parse.GetValue(metric), parse.GetValue(horizon), ct);
            PrintNotices(cli.Console, report.Notices);
            if (report.Rows.Count > 0)
            {
                PrintComparison(cli.Console, report.Rows);
            }
            else if (report.Notices.Count == 0)
            {
                cli.Console.MarkupLineInterpolated($"Neither arm of {name}@{aliasName} served rows with that metric: nothing to compare.");
            }

            if (parse.GetValue(html) is { } file)
            {
                var windows = new Dictionary<string, PerformanceReport>(StringComparer.Ordinal);
                foreach (var arms in report.Rows.GroupBy(r => r.PredictionTable))
                {
                    // The rows the table above counts: those scored since the current split began.
                    var performance = await store.Outcomes.PerformanceAsync(arms.Key, length, null, report.Since, ct);
                    windows[arms.Key] = performance with { Rows = performance.Rows.Where(p => arms.Any(a => a.Arm == p.Arm && a.Version == p.Version)).ToList() };
                }

                await File.WriteAllTextAsync(file.FullName, OutcomeReport.RenderComparison(name, aliasName, report, windows), ct);
                cli.Console.MarkupLineInterpolated($"Wrote the report to [bold]{file.FullName}[/].");
            }

            return report.Rows.Any(r => r.SampleRatioMismatch == true || r.Verdict == "canary significantly worse") ? 3 : 0;
        });
        return command;
    }

    private static void PrintNotices(IAnsiConsole console, IReadOnlyList<string> notices)
    {
        foreach (var notice in notices)
        {
            console.MarkupLineInterpolated($"[yellow]{notice}[/]");
        }
    }

    /// <summary>One row per window, version and arm, one column per metric.</summary>
    private static void PrintPerformance(IAnsiConsole console, IReadOnlyList<PerformanceRow> rows)
    {
        var metrics = rows.Select(r => r.Metric).Distinct().ToList();
        var length = rows[0].WindowEnd - rows[0].WindowStart;
        var view = new Table().AddColumns([$"window ({OutcomeReport.Length(length)}) from", "version", "arm", "n_labeled", "coverage", .. metrics]);
        var groups = rows.GroupBy(r => (r.WindowStart, r.WindowEnd, r.Version, r.Arm)).ToList();
        foreach (var g in groups)
        {
            var first = g.First();
            view.AddRow([Markup.Escape($"{g.Key.WindowStart.UtcDateTime:yyyy-MM-dd HH:mm}"), g.Key.Version.ToString(CultureInfo.InvariantCulture),
                g.Key.Arm, first.NLabeled.ToString("N0", CultureInfo.InvariantCulture), first.Coverage.ToString("0.#%", CultureInfo.InvariantCulture),
                .. metrics.Select(m => Format(g.FirstOrDefault(r => r.Metric == m)?.Value))]);
        }

        console.Write(view);
        var labelled = groups.Sum(g => g.First().NLabeled);
        var scored = groups.Sum(g => g.First().Coverage > 0 ? (long)Math.Round(g.First().NLabeled / g.First().Coverage) : 0);
        console.MarkupLineInterpolated(
            $"{groups.Select(g => g.Key.WindowStart).Distinct().Count()} window(s), {groups.Select(g => (g.Key.Version, g.Key.Arm)).Distinct().Count()} version/arm(s); {labelled:N0} labelled row(s){(groups.Any(g => g.First().Coverage == 0) ? "; windows at 0 % coverage have no labels yet (cbpe_accuracy estimates them)" : "")}.");
    }

    /// <summary>The arms as a table, then each verdict on a line of its own (they are sentences).</summary>
    private static void PrintComparison(IAnsiConsole console, IReadOnlyList<ComparisonRow> rows)
    {
        var view = new Table().AddColumns("prediction table", "arm", "version", "n", "n_labeled", "metric", "value", "difference", "95 % interval", "p-value", "test", "sample ratio");
        foreach (var r in rows)
        {
            view.AddRow(Markup.Escape(r.PredictionTable), r.Arm, r.Version.ToString(CultureInfo.InvariantCulture), r.N?.ToString("N0", CultureInfo.InvariantCulture) ?? "–",
                r.NLabeled.ToString("N0", CultureInfo.InvariantCulture), Markup.Escape(r.Metric), Format(r.Value), Format(r.Difference),
                r.CiLow is { } low && r.CiHigh is { } high ? $"{Format(low)} to {Format(high)}" : "–", Markup.Escape(HtmlReport.PValue(r.PValue)), Markup.Escape(r.Test ?? "–"),
                r.SampleRatioChiSquare is { } chi ? $"χ² {chi.ToString("0.##", CultureInfo.InvariantCulture)}{(r.SampleRatioMismatch == true ? " [red]mismatch[/]" : "")}" : "–");
        }

        console.Write(view);
        foreach (var r in rows.Where(r => r.Verdict is not null))
        {
            var colour = r.Verdict!.Contains("worse", StringComparison.Ordinal) || r.SampleRatioMismatch == true ? "red"
                : r.Verdict.Contains("better", StringComparison.Ordinal) ? "green" : "default";
            console.MarkupLine($"{Markup.Escape(r.PredictionTable)}, version {r.Version} against version {rows.FirstOrDefault(c => c.PredictionTable == r.PredictionTable && c.Arm == "champion")?.Version.ToString(CultureInfo.InvariantCulture) ?? "–"}: [{colour}]{Markup.Escape(r.Verdict)}[/].");
        }
    }

    private static string Format(double? value) => value is { } v ? v.ToString("0.####", CultureInfo.InvariantCulture) : "–";
}

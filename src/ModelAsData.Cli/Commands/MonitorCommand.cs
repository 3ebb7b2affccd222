using System.CommandLine;
using System.Globalization;
using ModelAsData.Cli.Reports;
using ModelAsData.Core;
using ModelAsData.Core.Monitoring;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad monitor baseline | drift</c>: a version's baseline profile, and drift against it (issue 16);
/// <c>mad monitor performance | compare</c>: what the outcomes say (issue 17, <see cref="MonitorOutcomeCommands"/>).
/// </summary>
internal static class MonitorCommand
{
    public static Command Create(CliContext cli)
    {
        var monitor = new Command("monitor", "Drift (a version's baseline profile, and how the rows it scores drift from it) and performance on outcomes (per window, and champion against canary).");
        monitor.Subcommands.Add(Baseline(cli));
        monitor.Subcommands.Add(Drift(cli));
        monitor.Subcommands.Add(MonitorOutcomeCommands.Performance(cli));
        monitor.Subcommands.Add(MonitorOutcomeCommands.Compare(cli));
        return monitor;
    }

    private static Command Baseline(CliContext cli)
    {
        var reference = new Argument<string>("version") { Description = "The model version, e.g. churn@7." };
        var from = new Option<string>("--from") { Description = "The table or view the baseline is taken from (read with your rights), e.g. churn_training.", Required = true };
        var bins = new Option<string?>("--bins") { Description = "Bin edges per numeric column as JSON, e.g. '{\"tenure\": [3, 12, 24]}'; default: 10 quantile bins." };
        var command = new Command("baseline", "Profile a table as a version's baseline: its mapped columns and the version's outputs on its rows.") { reference, from, bins };
        cli.SetAction(command, async (parse, ct) =>
        {
            var parsed = ModelReference.Parse(parse.GetValue(reference)!);
            if (parsed.Version is not { } version)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"A baseline belongs to one version: write {parsed.Model}@<version>, e.g. {parsed.Model}@1 (see mad models show {parsed.Model}).");
            }

            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var summary = await cli.Console.Status().StartAsync($"Profiling {parse.GetValue(from)} and scoring it with {parsed.Model}@{version}…",
                _ => store.Monitoring.SetBaselineAsync(parsed.Model, version, parse.GetValue(from)!, parse.GetValue(bins), ct));
            cli.Console.MarkupLineInterpolated($"Baseline of [bold]{summary.Model}@{summary.Version}[/] from {summary.Source}: {summary.Rows:N0} rows, {summary.Inputs} input column(s), {summary.Outputs} output column(s).");
            cli.Console.MarkupLineInterpolated($"Rows scored by this version are counted into its bins from now on; see drift with: mad monitor drift <table>");
            return 0;
        });
        return command;
    }

    private static Command Drift(CliContext cli)
    {
        var table = new Argument<string>("table") { Description = "The prediction table, e.g. churn_scores." };
        var window = new Option<string>("--window") { Description = "The window length: whole hours, e.g. 1h, 12h, 1d, 7d.", DefaultValueFactory = _ => "1d" };
        var since = new Option<DateTimeOffset?>("--since") { Description = "The start of the first window (ISO 8601); default: one window ending with the current hour." };
        var html = new Option<FileInfo?>("--html") { Description = "Also write a self-contained HTML report with the histograms to this file." };
        var all = new Option<bool>("--all") { Description = "List every metric, not only the drifted ones and a summary." };
        var device = DeviceScope.Option();
        var command = new Command("drift", "Drift of a prediction table's inputs and outputs against its versions' baselines, per window.") { table, window, since, html, all, device };
        cli.SetAction(command, async (parse, ct) =>
        {
            var length = ParseWindow(parse.GetValue(window)!);
            await using var store = await MadStore.OpenAsync(DeviceScope.Apply(cli.RequireDb(parse), parse.GetValue(device)), ct);
            var name = parse.GetValue(table)!;
            var rows = await store.Monitoring.DriftAsync(name, parse.GetValue(since), length, ct);
            if (rows.Count == 0)
            {
                cli.Console.MarkupLineInterpolated($"No drift to show for {name}: none of its versions has a baseline. Set one with: mad monitor baseline <model>@<version> --from <table>");
                return 0;
            }

            Print(cli.Console, rows, parse.GetValue(all));
            if (parse.GetValue(html) is { } file)
            {
                var histograms = await store.Monitoring.HistogramsAsync(name, parse.GetValue(since), length, ct);
                await File.WriteAllTextAsync(file.FullName, DriftReport.Render(name, rows, histograms), ct);
                cli.Console.MarkupLineInterpolated($"Wrote the report to [bold]{file.FullName}[/].");
            }

            return rows.Any(r => r.Drifted) ? 3 : 0;
        });
        return command;
    }

    private static void Print(IAnsiConsole console, IReadOnlyList<DriftRow> rows, bool all)
    {
        var view = new Table().AddColumns("window", "version", "column", "kind", "metric", "value", "threshold", "drifted", "n_baseline", "n_current");
        foreach (var r in rows.Where(r => all || r.Drifted || r.NCurrent == 0).OrderByDescending(r => r.Drifted).ThenBy(r => r.WindowStart))
        {
            view.AddRow(Markup.Escape($"{r.WindowStart:yyyy-MM-dd HH:mm}–{r.WindowEnd:HH:mm}"), r.Version.ToString(CultureInfo.InvariantCulture), Markup.Escape(r.Column), r.Kind, r.Metric,
                Format(r.Value), Format(r.Threshold), r.Drifted ? "[red]yes[/]" : "no", r.NBaseline.ToString("N0", CultureInfo.InvariantCulture), r.NCurrent.ToString("N0", CultureInfo.InvariantCulture));
        }

        console.Write(view);
        var drifted = rows.Where(r => r.Drifted).Select(r => (r.Version, r.Column)).Distinct().Count();
        var columns = rows.Select(r => (r.Version, r.Column)).Distinct().Count();
        console.MarkupLineInterpolated($"{drifted} of {columns} column(s) drifted in {rows.Select(r => r.WindowStart).Distinct().Count()} window(s); {rows.Where(r => r.NCurrent == 0).Select(r => r.WindowStart).Distinct().Count()} window(s) without rows.{(all ? "" : " --all lists every metric.")}");
    }

    private static string Format(double? value) => value is { } v ? v.ToString("0.####", CultureInfo.InvariantCulture) : "–";

    /// <summary>'1d', '12h', '7d', '1 day', '2 hours'.</summary>
    internal static TimeSpan ParseWindow(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        var digits = new string(t.TakeWhile(char.IsDigit).ToArray());
        var unit = t[digits.Length..].Trim();
        if (digits.Length == 0 || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"A window is a number of hours or days, e.g. 1h, 12h, 1d, 7d; got '{text}'.");
        }

        return unit switch
        {
            "h" or "hour" or "hours" => TimeSpan.FromHours(n),
            "d" or "day" or "days" => TimeSpan.FromDays(n),
            "w" or "week" or "weeks" => TimeSpan.FromDays(7 * n),
            _ => throw new ModelAsDataException(ErrorCode.InvalidArgument, $"A window is a number of hours or days, e.g. 1h, 12h, 1d, 7d; got '{text}'."),
        };
    }
}

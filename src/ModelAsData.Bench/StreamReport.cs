using System.Globalization;
using Spectre.Console;

namespace ModelAsData.Bench;

/// <summary>Prints the stream bench: three tables, the goals met or missed, and the same as Markdown for docs/BENCHMARKS.md.</summary>
internal static class StreamReport
{
    private const double VisibleP50Goal = 2;
    private const double VisibleP99Goal = 10;
    private const double SustainedGoal = 50_000;
    private const double OverheadGoal = 0.15;

    public static void Print(IAnsiConsole console, StreamResults results, bool markdown)
    {
        var latency = LatencyRows(results);
        var ramp = RampRows(results);
        var writers = WriterRows(results);
        Write(console, latency.Header, latency.Rows);
        Write(console, ramp.Header, ramp.Rows);
        Write(console, writers.Header, writers.Rows);
        console.WriteLine(Goals(results));
        if (!markdown)
        {
            return;
        }

        console.WriteLine();
        console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"PostgreSQL {results.ServerVersion}, {Environment.ProcessorCount} CPUs, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, load average {results.LoadAverage}; " +
            $"{results.Rounds} rounds of {results.Period.TotalSeconds:0} s, medians over rounds (the ramp runs once, {results.Period.TotalSeconds:0} s a step)."));
        foreach (var (header, rows) in new[] { latency, ramp, writers })
        {
            console.WriteLine();
            console.WriteLine($"| {string.Join(" | ", header)} |");
            console.WriteLine($"|---|{string.Join("|", header.Skip(1).Select(_ => "---:"))}|");
            rows.ForEach(row => console.WriteLine($"| {string.Join(" | ", row)} |"));
        }

        console.WriteLine();
        console.WriteLine(Goals(results));
    }

    private static (string[] Header, List<string[]> Rows) LatencyRows(StreamResults results)
    {
        var l = results.Latency;
        var rate = Invariant($"{StreamLatencyPhase.RowsPerSecond:N0} rows/s");
        return (["latency", "p50 ms", "p99 ms", "max ms"],
        [
            ["SELECT 1 round trip (reference)", Ms(l.SelectOne.P50), Ms(l.SelectOne.P99), Ms(l.SelectOne.Max)],
            [$"writer's one-row INSERT + COMMIT round trip, watched, {rate}", Ms(l.WriterRoundTrip.P50), Ms(l.WriterRoundTrip.P99), Ms(l.WriterRoundTrip.Max)],
            [$"commit → prediction visible (server clock), {rate}", Ms(l.Visible.P50), Ms(l.Visible.P99), Ms(l.Visible.Max)],
        ]);
    }

    private static (string[] Header, List<string[]> Rows) RampRows(StreamResults results) =>
        ([Invariant($"target rows/s ({StreamRampPhase.Writers} writers, {StreamRampPhase.RowsPerStatement}-row INSERTs)"), "reached rows/s", "max keys waiting",
          "max oldest key s", "drained after stop s", "lag bounded"],
         results.Ramp.Select(s => new[]
         {
             Rate(s.Target), Rate(s.Achieved), Rate(s.MaxWaiting), Invariant($"{s.MaxOldestSeconds:0.00}"),
             s.DrainedAfter is { } d ? Invariant($"{d.TotalSeconds:0.00}") : "> 1", s.Bounded ? "yes" : "no",
         }).ToList());

    private static (string[] Header, List<string[]> Rows) WriterRows(StreamResults results) =>
        ([Invariant($"{StreamWritersPhase.Writers} writers, one-row INSERT transactions"), "median rows/s", "min", "max"],
         [.. new[] { results.Unwatched, results.Watched, results.TriggersOnly }.OfType<Measurement>().Select(m => new[] { m.Name, Rate(m.Median), Rate(m.Min), Rate(m.Max) })]);

    /// <summary>One goal a line, short enough not to wrap in a terminal, and a Markdown list as it stands.</summary>
    private static string Goals(StreamResults r)
    {
        var last = r.Ramp[^1];
        var sustained = r.Ramp.Any(s => s.Bounded) ? $"{Rate(r.Sustained)} rows/s" : $"below {Rate(r.Ramp[0].Target)} rows/s";
        var limit = !last.Bounded ? "" : !last.WritersKeptUp ? ", the writers were the limit" : ", the highest step tried";
        var v = r.Latency.Visible;
        return string.Join(Environment.NewLine,
            "Goals:",
            Invariant($"- commit → visible p50 ≤ {VisibleP50Goal:0} ms: {Verdict(v.P50 <= VisibleP50Goal)} ({v.P50:0.00} ms); p99 ≤ {VisibleP99Goal:0} ms: {Verdict(v.P99 <= VisibleP99Goal)} ({v.P99:0.00} ms)"),
            Invariant($"- sustained ≥ {SustainedGoal:N0} rows/s with bounded lag: {Verdict(r.Sustained >= SustainedGoal)} ({sustained}{limit})"),
            Invariant($"- writer overhead ≤ {OverheadGoal:P0} at {StreamWritersPhase.Writers} writers: {Verdict(r.Overhead <= OverheadGoal)} ({r.Overhead:P1}")
            + (r.TriggerOverhead is { } t ? Invariant($"; the triggers alone, sidecar paused: {t:P1})") : ")"));
    }

    private static void Write(IAnsiConsole console, string[] header, List<string[]> rows)
    {
        var table = new Table().AddColumns(header.Select(Markup.Escape).ToArray());
        foreach (var row in rows)
        {
            table.AddRow(row.Select(Markup.Escape).ToArray());
        }

        console.Write(table);
    }

    private static string Verdict(bool met) => met ? "met" : "missed";

    private static string Ms(double ms) => Invariant($"{ms:0.00}");

    private static string Rate(double perSecond) => Invariant($"{perSecond:N0}");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

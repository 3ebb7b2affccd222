using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using ModelAsData.Cli.Bench;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad bench</c>: the benchmarks behind docs/BENCHMARKS.md, each with its reference measured in the same run.</summary>
internal static class BenchCommand
{
    /// <summary>Each figure's reference and the ratio the project aims for.</summary>
    private static readonly (string Figure, string Reference, double Goal)[] s_ratios =
    [
        ("predict() in SQLite, 1 row per call", "raw ONNX Runtime, 1 row per call", 0.5),
        ("tables refresh", "bare read + write, no scoring", 0.6),
        ("tables refresh", "raw ONNX Runtime, {batch} rows per call", 0),
    ];

    /// <summary>The PostgreSQL figures: the refresh against the slower of raw scoring and bare movement, and against the service path.</summary>
    private static readonly (string Figure, string Reference, double Goal)[] s_postgresRatios =
    [
        (PostgresBench.Refresh, "slower of (raw ONNX Runtime, bare data movement)", 0.6),
        (PostgresBench.Refresh, PostgresBench.Bare, 0),
        (PostgresBench.Refresh, PostgresBench.Service, 5),
    ];

    public static Command Create(CliContext cli)
    {
        var rows = new Option<int>("--rows") { Description = "Rows per measurement.", DefaultValueFactory = _ => 200_000 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; the median is reported.", DefaultValueFactory = _ => 5 };
        var markdown = new Option<bool>("--markdown") { Description = "Also print the results as a Markdown table for docs/BENCHMARKS.md." };
        var section = new Option<string>("--section") { Description = "With a PostgreSQL --db: online, stream, batch, or all.", DefaultValueFactory = _ => "all" };
        section.AcceptOnlyFromAmong("all", "online", "stream", "batch");
        var command = new Command("bench", "Measure scoring speed against references measured in the same run (raw ONNX Runtime, bare read + write).") { rows, rounds, markdown, section };
        cli.SetAction(command, async (parse, ct) =>
        {
            var console = cli.Console;
            if (parse.GetValue(cli.Db) is { } db && MadStore.IsPostgres(db))
            {
                var which = parse.GetValue(section);
                if (which is "all" or "online")
                {
                    console.MarkupLine("[bold]Online (PostgreSQL)[/]: latency of one request at a time, beside SELECT 1 and raw ONNX Runtime.");
                    await new OnlineBench(db, Math.Min(parse.GetValue(rows), 5_000), parse.GetValue(rounds), console).RunAsync(parse.GetValue(markdown), ct);
                }

                if (which is "all" or "stream")
                {
                    console.MarkupLine("[bold]Streaming (PostgreSQL)[/]: commit → prediction latency, sustained rate with bounded lag, writer overhead of the watch triggers.");
                    var stream = new StreamBench(db, parse.GetValue(rounds), line => console.MarkupLineInterpolated($"[grey]{line}[/]"));
                    StreamReport.Print(console, await stream.RunAsync(ct), parse.GetValue(markdown));
                }

                if (which is not ("all" or "batch"))
                {
                    return 0;
                }

                // Batch: a full refresh by one sidecar, beside raw scoring, bare data movement and a service path.
                var pgRows = parse.GetResult(rows) is { Implicit: false } ? parse.GetValue(rows) : 1_000_000;
                var pgRounds = parse.GetResult(rounds) is { Implicit: false } ? parse.GetValue(rounds) : 3;
                console.MarkupLineInterpolated($"[bold]PostgreSQL[/]: {pgRows:N0} rows of {EmbeddedBench.Model}, {pgRounds} rounds, median rows/s.");
                var pg = new PostgresBench(db, pgRows, pgRounds, line => console.MarkupLineInterpolated($"[grey]{line}[/]"));
                Print(console, await pg.RunAsync(ct), parse.GetValue(markdown), s_postgresRatios);
                return 0;
            }

            console.MarkupLineInterpolated($"[bold]Embedded (SQLite)[/]: {parse.GetValue(rows):N0} rows of {EmbeddedBench.Model}, {parse.GetValue(rounds)} rounds, median rows/s.");
            var bench = new EmbeddedBench(parse.GetValue(rows), parse.GetValue(rounds), line => console.MarkupLineInterpolated($"[grey]{line}[/]"));
            var measurements = await bench.RunAsync(ct);
            Print(console, measurements, parse.GetValue(markdown), s_ratios);
            return 0;
        });
        return command;
    }

    private static void Print(IAnsiConsole console, IReadOnlyList<Measurement> measurements, bool markdown, (string Figure, string Reference, double Goal)[] ratioSpecs)
    {
        var table = new Table().AddColumns("measurement", "median rows/s", "min", "max");
        foreach (var m in measurements)
        {
            table.AddRow(Markup.Escape(m.Name), Rate(m.Median), Rate(m.Min), Rate(m.Max));
        }

        console.Write(table);
        var ratios = new Table().AddColumns("figure", "reference", "ratio (medians)", "goal");
        var lines = new List<string>();
        foreach (var (figure, referencePattern, goal) in ratioSpecs)
        {
            var f = measurements.First(m => m.Name == figure);
            var r = referencePattern.StartsWith("slower of", StringComparison.Ordinal)
                ? measurements.Where(m => m.Name.StartsWith(PostgresBench.RawPrefix, StringComparison.Ordinal) || m.Name == PostgresBench.Bare).MinBy(m => m.Median)!
                : measurements.First(m => referencePattern.Contains("{batch}", StringComparison.Ordinal)
                    ? m.Name.StartsWith("raw ONNX Runtime", StringComparison.Ordinal) && !m.Name.Contains(", 1 row", StringComparison.Ordinal)
                    : m.Name == referencePattern);
            var ratio = f.Median / r.Median;
            var goalText = goal > 0 ? $"≥ {goal:0.0}× ({(ratio >= goal ? "met" : "missed")})" : "-";
            ratios.AddRow(Markup.Escape(figure), Markup.Escape(r.Name), $"{ratio:0.00}×", goalText);
            lines.Add($"| {figure} | {Rate(f.Median)} | {r.Name} | {Rate(r.Median)} | {ratio:0.00}× | {goalText} |");
        }

        console.Write(ratios);
        if (markdown)
        {
            console.WriteLine();
            console.WriteLine($"Machine: {Machine()}");
            console.WriteLine();
            console.WriteLine("| measurement | median rows/s | min | max |");
            console.WriteLine("|---|---:|---:|---:|");
            foreach (var m in measurements)
            {
                console.WriteLine($"| {m.Name} | {Rate(m.Median)} | {Rate(m.Min)} | {Rate(m.Max)} |");
            }

            console.WriteLine();
            console.WriteLine("| figure | rows/s | reference | rows/s | ratio | goal |");
            console.WriteLine("|---|---:|---|---:|---:|---|");
            lines.ForEach(console.WriteLine);
        }
    }

    private static string Rate(double rowsPerSecond) => rowsPerSecond.ToString("N0", CultureInfo.InvariantCulture);

    private static string Machine()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        return $"{cpu ?? RuntimeInformation.ProcessArchitecture.ToString()}, {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, " +
               $".NET {Environment.Version}, ONNX Runtime {OrtEnv.Instance().GetVersionString()}";
    }
}

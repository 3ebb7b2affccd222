using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Spectre.Console;

namespace ModelAsData.Bench;

/// <summary>Prints measurements, each figure's ratio to its reference against the goal, and (for docs/BENCHMARKS.md) the same as Markdown.</summary>
internal static class MeasurementReport
{
    public static void Print(IAnsiConsole console, IReadOnlyList<Measurement> measurements, bool markdown, (string Figure, string Reference, double Goal)[] ratioSpecs)
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
            var goalText = goal > 0 ? $"≥ {goal:0.0#}× ({(ratio >= goal ? "met" : "missed")})" : "-";
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

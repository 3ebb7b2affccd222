using System.CommandLine;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad bench</c>: the benchmarks behind docs/BENCHMARKS.md.</summary>
internal static class BenchCommand
{
    public static Command Create(CliContext cli)
    {
        var command = new Command("bench", "Measure scoring speed against references measured in the same run.");
        cli.SetAction(command, (parse, ct) => Task.FromResult(0));
        return command;
    }
}

using System.CommandLine;
using ModelAsData.Bench;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad bench</c>: runs the benchmarks of ModelAsData.Bench (docs/BENCHMARKS.md) against the --db store.</summary>
internal static class BenchCommand
{
    public static Command Create(CliContext cli)
    {
        var rows = new Option<int>("--rows") { Description = "Rows per measurement.", DefaultValueFactory = _ => BenchSuite.EmbeddedRows };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; the median is reported.", DefaultValueFactory = _ => BenchSuite.EmbeddedRounds };
        var markdown = new Option<bool>("--markdown") { Description = "Also print the results as a Markdown table for docs/BENCHMARKS.md." };
        var section = new Option<string>("--section") { Description = "With a PostgreSQL --db: online, stream, batch, all, or monitoring (drift counting on vs off).", DefaultValueFactory = _ => "all" };
        section.AcceptOnlyFromAmong(BenchSuite.Sections);
        var command = new Command("bench", "Measure scoring speed against references measured in the same run (raw ONNX Runtime, bare read + write).") { rows, rounds, markdown, section };
        cli.SetAction(command, async (parse, ct) =>
        {
            if (parse.GetValue(cli.Db) is { } db && MadStore.IsPostgres(db))
            {
                // Null where the user gave none: each PostgreSQL section has its own default.
                int? Given(Option<int> option) => parse.GetResult(option) is { Implicit: false } ? parse.GetValue(option) : null;
                await BenchSuite.RunPostgresAsync(cli.Console, db, parse.GetValue(section)!, Given(rows), Given(rounds), parse.GetValue(markdown), ct);
                return 0;
            }

            await BenchSuite.RunEmbeddedAsync(cli.Console, parse.GetValue(rows), parse.GetValue(rounds), parse.GetValue(markdown), ct);
            return 0;
        });
        return command;
    }
}

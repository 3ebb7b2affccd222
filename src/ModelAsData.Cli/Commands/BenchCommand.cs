using System.CommandLine;
using ModelAsData.Bench;
using ModelAsData.Core;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad bench</c>: runs the benchmarks of ModelAsData.Bench (docs/BENCHMARKS.md) against the --db store.</summary>
internal static class BenchCommand
{
    public static Command Create(CliContext cli)
    {
        var rows = new Option<int>("--rows") { Description = "Rows per measurement.", DefaultValueFactory = _ => BenchSuite.EmbeddedRows };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; the median is reported.", DefaultValueFactory = _ => BenchSuite.EmbeddedRounds };
        var markdown = new Option<bool>("--markdown") { Description = "Also print the results as a Markdown table for docs/BENCHMARKS.md." };
        var section = new Option<string>("--section") { Description = "all (the default), or one section: with a PostgreSQL --db online, stream, batch, monitoring (drift counting on vs off), drift (mad.drift from counts vs a full-scan PSI), sync (device push vs COPY), outcomes (mad.performance vs a plain join) or export (training-set export vs COPY); on the embedded store image (a CNN over uint8 images).", DefaultValueFactory = _ => "all" };
        section.AcceptOnlyFromAmong(BenchSuite.Sections);
        var command = new Command("bench", "Measure scoring speed against references measured in the same run (raw ONNX Runtime, bare read + write).") { rows, rounds, markdown, section };
        cli.SetAction(command, async (parse, ct) =>
        {
            // Null where the user gave none: each section has its own default.
            int? Given(Option<int> option) => parse.GetResult(option) is { Implicit: false } ? parse.GetValue(option) : null;
            var chosen = parse.GetValue(section)!;
            if (parse.GetValue(cli.Db) is { } db && MadStore.IsPostgres(db))
            {
                if (!chosen.Equals("all", StringComparison.Ordinal) && BenchSuite.EmbeddedSections.Contains(chosen))
                {
                    throw new ModelAsDataException(ErrorCode.InvalidArgument, $"The {chosen} section runs on the embedded store: leave out --db (or give a SQLite file).");
                }

                await BenchSuite.RunPostgresAsync(cli.Console, db, chosen, Given(rows), Given(rounds), parse.GetValue(markdown), ct);
                return 0;
            }

            if (!BenchSuite.EmbeddedSections.Contains(chosen))
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"The {chosen} section needs a PostgreSQL store: give --db \"Host=…;Database=…\".");
            }

            await BenchSuite.RunEmbeddedAsync(cli.Console, chosen, Given(rows), parse.GetValue(rounds), parse.GetValue(markdown), ct);
            return 0;
        });
        return command;
    }
}

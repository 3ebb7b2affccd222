using System.CommandLine;
using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad tables legacy NAME [COLUMN] [--output OUTPUT] [--forget]</c>: legacy replacement (docs/DEPLOYMENTS.md), the
/// words of PostgreSQL's mad.set_legacy_column and mad.legacy_agreement, on both stores.
/// </summary>
internal static class TablesLegacyCommand
{
    public static Command Create(CliContext cli)
    {
        var name = new Argument<string>("name") { Description = "The prediction table, e.g. churn_scores." };
        var column = new Argument<string?>("column")
        {
            Description = "The column of its source that holds the legacy system's prediction; without it, show the agreement with the one named.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var output = new Option<string?>("--output") { Description = "The output column it is compared with (default: the first of its kind: a label for a text or integer column, a value for a real one)." };
        var forget = new Option<bool>("--forget") { Description = "Forget the legacy column: the report no longer compares with it." };
        var command = new Command("legacy",
            "Compare a prediction table with the legacy system it replaces: name the source column holding the legacy prediction, then see per arm and version "
            + "the share equal (labels) or the mean absolute difference (values); `mad deploy status` shows it too.")
        {
            name, column, output, forget,
        };
        cli.SetAction(command, async (parse, ct) =>
        {
            var table = parse.GetValue(name)!;
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            LegacyColumn legacy;
            if (parse.GetValue(forget))
            {
                if (parse.GetValue(column) is not null || parse.GetValue(output) is not null)
                {
                    throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--forget takes no column or --output: mad tables legacy {table} --forget.");
                }

                legacy = await store.Deployments.SetLegacyColumnAsync(table, null, cancellationToken: ct);
            }
            else if (parse.GetValue(column) is { } named)
            {
                legacy = await store.Deployments.SetLegacyColumnAsync(table, named, parse.GetValue(output), ct);
            }
            else
            {
                if (parse.GetValue(output) is not null)
                {
                    throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--output goes with a column: mad tables legacy {table} COLUMN --output OUTPUT.");
                }

                legacy = await store.Deployments.GetLegacyColumnAsync(table, ct);
            }

            if (legacy.Column is null)
            {
                cli.Console.MarkupLineInterpolated($"{table} names no legacy column. Name one with: mad tables legacy {table} COLUMN [[--output OUTPUT]]");
                return 0;
            }

            cli.Console.MarkupLineInterpolated($"{table}: legacy column {legacy.Column}, compared with {legacy.Output}.");
            var rows = await store.Deployments.LegacyAgreementAsync(table, ct);
            var grid = new Table().AddColumns("arm", "version", "rows compared", "share equal", "mean abs. difference");
            foreach (var r in rows)
            {
                grid.AddRow(r.Arm, r.ModelVersion.ToString(CultureInfo.InvariantCulture), r.RowsCompared.ToString(CultureInfo.InvariantCulture),
                    r.ShareEqual is { } equal ? (equal * 100).ToString("0.##", CultureInfo.InvariantCulture) + " %" : "-",
                    r.MeanAbsoluteDifference is { } difference ? difference.ToString("0.#####", CultureInfo.InvariantCulture) : "-");
            }

            cli.Console.Write(grid);
            if (rows.Count == 0)
            {
                cli.Console.MarkupLineInterpolated($"No rows compared yet: refresh it (mad tables refresh {table}), and check the legacy column holds values.");
            }

            return 0;
        });
        return command;
    }
}

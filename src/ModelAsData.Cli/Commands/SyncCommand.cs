using System.CommandLine;
using System.Globalization;
using ModelAsData.Sync;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad sync pull | push</c> (docs/SYNC.md): an edge device's SQLite file takes model versions, aliases and
/// deployments from PostgreSQL, scores offline, and sends its predictions back.
/// </summary>
internal static class SyncCommand
{
    // Holds a pull open inside its device transaction for this many milliseconds: the kill test's window, nothing else.
    private const string HoldVariable = "MAD_SYNC_TEST_HOLD_MS";

    public static Command Create(CliContext cli)
    {
        var sync = new Command("sync", "Sync an edge device's SQLite file with a central PostgreSQL database: models flow down, predictions flow back.");
        sync.Subcommands.Add(Pull(cli));
        sync.Subcommands.Add(Push(cli));
        return sync;
    }

    private static Command Pull(CliContext cli)
    {
        var from = new Option<string>("--from") { Description = "The central PostgreSQL connection string (Host=...;Database=...); the login needs role mad_user.", Required = true };
        var to = new Option<string>("--to") { Description = "The device's SQLite file (created if missing).", Required = true };
        var models = new Option<string[]>("--model")
        {
            Description = "A model reference to copy, repeatable: churn (its aliases and newest ready version), churn@production, churn@7. Default: every model.",
            AllowMultipleArgumentsPerToken = false,
        };
        var device = new Option<string?>("--device") { Description = "The device id to record centrally in mad.devices (kept in the file for later syncs)." };
        var command = new Command("pull",
            "Copy the referenced versions (sha256 verified), their aliases and deployments into the device file in one transaction; " +
            "again, it copies only what changed. An interrupted pull leaves the file as it was.") { from, to, models, device };
        cli.SetAction(command, async (parse, ct) =>
        {
            Func<CancellationToken, Task>? hold = null;
            if (int.TryParse(Environment.GetEnvironmentVariable(HoldVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
            {
                hold = async token =>
                {
                    await Console.Error.WriteLineAsync("holding the pull open before commit");
                    await Task.Delay(ms, token);
                };
            }

            var options = new PullOptions { Models = parse.GetValue(models) ?? [], Device = parse.GetValue(device), BeforeCommit = hold };
            var result = await ModelSync.PullAsync(parse.GetValue(from)!, parse.GetValue(to)!, options, ct);
            cli.Console.MarkupLineInterpolated(
                $"Pulled into {parse.GetValue(to)}: {result.VersionsCopied} version(s) copied, {result.AliasesChanged} alias(es) and {result.DeploymentsChanged} deployment(s) changed; it holds {string.Join(", ", result.Versions)}.");
            if (result.BaselinesChanged > 0)
            {
                cli.Console.MarkupLineInterpolated($"{result.BaselinesChanged} baseline(s) written: the device counts drift into the central bins from now on.");
            }

            return 0;
        });
        return command;
    }

    private static Command Push(CliContext cli)
    {
        var from = new Option<string>("--from") { Description = "The device's SQLite file.", Required = true };
        var to = new Option<string>("--to") { Description = "The central PostgreSQL connection string; the login needs role mad_device.", Required = true };
        var device = new Option<string?>("--device") { Description = "The device id, e.g. shop-17 (default: the one the file holds from an earlier sync)." };
        var command = new Command("push",
            "Upload the device's prediction-table rows (with version and arm) into mad.edge_predictions, its outcomes into mad.edge_outcomes and its drift " +
            "counts into mad.profile_counts, in one transaction: pushing twice adds nothing, and a push naming a version the central database does not hold is refused whole.") { from, to, device };
        cli.SetAction(command, async (parse, ct) =>
        {
            var result = await ModelSync.PushAsync(parse.GetValue(from)!, parse.GetValue(to)!, new PushOptions { Device = parse.GetValue(device) }, ct);
            cli.Console.MarkupLineInterpolated($"Pushed device {result.Device}: {result.RowsRead} row(s) read, {result.RowsAdded} new; {result.OutcomesRead} outcome(s) read, {result.OutcomesAdded} new.");
            cli.Console.MarkupLineInterpolated($"Drift: {result.ProfileCountRowsRead} profile-count row(s) read, {result.ProfileCountsAdded} count(s) new.");
            foreach (var skipped in result.ProfileCounts.Where(p => p.Reason is not null))
            {
                cli.Console.MarkupLineInterpolated($"[yellow]Skipped {skipped.Counts} count(s) of {skipped.PredictionTable} version {skipped.Version}: {skipped.Reason}.[/]");
            }

            return 0;
        });
        return command;
    }
}

using System.CommandLine;
using Dapper;
using ModelAsData.Postgres;
using ModelAsData.Sqlite;
using ModelAsData.Sync;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad outcomes set</c>: binds an outcome source to a prediction table, in mad.set_outcomes' words, on either
/// store. On PostgreSQL it calls mad.set_outcomes; on a SQLite file (a device) it records mad_outcomes, which
/// <c>mad sync push</c> reads (docs/SYNC.md "Outcomes").
/// </summary>
internal static class OutcomesCommand
{
    public static Command Create(CliContext cli)
    {
        var outcomes = new Command("outcomes", "Outcomes: the true labels of a prediction table's rows, bound by key with the time they were observed.");
        outcomes.Subcommands.Add(Set(cli));
        return outcomes;
    }

    private static Command Set(CliContext cli)
    {
        var table = new Argument<string>("prediction-table") { Description = "The prediction table the labels grade, e.g. churn_scores; or a model's online requests by the key callers pass, online:churn (PostgreSQL, mad_admin)." };
        var source = new Option<string>("--source") { Description = "The table or view holding the labels, e.g. churn_events.", Required = true };
        var key = new Option<string[]>("--key") { Description = "The source's key columns, in the prediction table's key order (repeatable).", Required = true, AllowMultipleArgumentsPerToken = true };
        var label = new Option<string>("--label") { Description = "The column holding the label.", Required = true };
        var observedAt = new Option<string>("--observed-at") { Description = "The column saying when the label was observed.", Required = true };
        var command = new Command("set", "Bind (or bind again) the outcome source of a prediction table, as SELECT mad.set_outcomes(...) does.")
        {
            table, source, key, label, observedAt,
        };
        cli.SetAction(command, async (parse, ct) =>
        {
            var db = cli.RequireDb(parse);
            var binding = new OutcomeBinding(parse.GetValue(table)!, parse.GetValue(source)!, parse.GetValue(key)!, parse.GetValue(label)!, parse.GetValue(observedAt)!);
            if (MadStore.IsPostgres(db))
            {
                await using var dataSource = PostgresDataSource.Create(db, "mad outcomes");
                await using var connection = await dataSource.OpenConnectionAsync(ct);
                await connection.ExecuteAsync(new CommandDefinition(
                    "SELECT mad.set_outcomes(@PredictionTable, source => @Source::regclass, key => @key, label => @Label, observed_at => @ObservedAt)",
                    new { binding.PredictionTable, binding.Source, key = binding.Key.ToArray(), binding.Label, binding.ObservedAt }, cancellationToken: ct));
            }
            else
            {
                await using var registry = await SqliteModelRegistry.OpenAsync(db, ct);
                await DeviceOutcomes.SetAsync(registry.Connection, binding, ct);
            }

            cli.Console.MarkupLineInterpolated($"Outcomes of {binding.PredictionTable}: {binding.Label} from {binding.Source} by ({string.Join(", ", binding.Key)}), observed at {binding.ObservedAt}.");
            return 0;
        });
        return command;
    }
}

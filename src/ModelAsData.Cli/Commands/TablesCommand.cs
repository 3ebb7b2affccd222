using System.CommandLine;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad tables create | refresh | list | status | watch | unwatch | legacy</c>: prediction tables.</summary>
internal static class TablesCommand
{
    public static Command Create(CliContext cli)
    {
        var tables = new Command("tables", "Prediction tables: a model bound to a source table, scored into a table you can JOIN.");
        tables.Subcommands.Add(CreateTable(cli));
        tables.Subcommands.Add(Refresh(cli));
        tables.Subcommands.Add(List(cli));
        tables.Subcommands.Add(Status(cli));
        tables.Subcommands.Add(Watch(cli, watch: true));
        tables.Subcommands.Add(Watch(cli, watch: false));
        tables.Subcommands.Add(TablesLegacyCommand.Create(cli));
        return tables;
    }

    private static Command CreateTable(CliContext cli)
    {
        var name = new Argument<string>("name") { Description = "The prediction table's name, e.g. churn_scores." };
        var model = new Option<string>("--model") { Description = "The model reference: name, name@alias or name@version.", Required = true };
        var source = new Option<string>("--source") { Description = "The table whose rows are scored.", Required = true };
        var key = new Option<string[]>("--key") { Description = "The column(s) that identify a source row; repeat or separate with commas.", Required = true };
        var features = new Option<string?>("--features") { Description = "JSON mapping each model input to a column or a list of columns; default: inputs map to columns of the same name." };
        var command = new Command("create", "Bind a model to a source table and create its output table.") { name, model, source, key, features };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var keys = parse.GetValue(key)!.SelectMany(k => k.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
            var table = await store.Tables.CreateAsync(
                new PredictionTableSpec(parse.GetValue(name)!, parse.GetValue(source)!, keys, parse.GetValue(model)!, FeatureMapping.Parse(parse.GetValue(features))), ct);
            cli.Console.MarkupLineInterpolated($"Created [bold]{table.OutputTable}[/]: {string.Join(", ", table.Key)} → {string.Join(", ", table.Columns.Select(c => c.Name))}, model_version, scored_at, error.");
            cli.Console.MarkupLineInterpolated($"Features: {table.Features.ToJsonString()}");
            cli.Console.MarkupLineInterpolated($"Score it with: mad tables refresh {table.Name}");
            return 0;
        });
        return command;
    }

    private static Command Refresh(CliContext cli)
    {
        var name = new Argument<string>("name") { Description = "The prediction table." };
        var wait = new Option<bool>("--wait") { Description = "Wait for the refresh to finish, with a progress bar (the embedded store always does)." };
        var command = new Command("refresh", "Score every source row with the version the model reference means now.") { name, wait };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            if (store.Jobs.IsSupported)
            {
                var id = await store.Jobs.StartRefreshAsync(parse.GetValue(name)!, ct);
                if (!parse.GetValue(wait))
                {
                    cli.Console.MarkupLineInterpolated($"Started job [bold]{id}[/]: running sidecars (mad serve) score it. Follow it with: mad jobs follow {id}");
                    return 0;
                }

                var job = await JobsCommand.FollowAsync(cli.Console, store.Jobs, id, ct);
                cli.Console.MarkupLineInterpolated(
                    $"Job {job.Id}: scored {job.RowsDone:N0} rows of {job.Table} with [bold]{job.Model}@{job.Version}[/] ({job.RowsPerSecond(DateTimeOffset.UtcNow):N0} rows/s); {job.RowsFailed:N0} with an error.");
                return 0;
            }

            var result = await RefreshWithProgressAsync(cli.Console, store.Tables, parse.GetValue(name)!, ct);
            cli.Console.MarkupLineInterpolated(
                $"Scored {result.Rows:N0} rows of {result.Name} with [bold]{result.Version}[/] in {result.Elapsed.TotalSeconds:F2}s ({result.Rows / Math.Max(result.Elapsed.TotalSeconds, 1e-9):N0} rows/s); {result.Failed:N0} with an error.");
            return 0;
        });
        return command;
    }

    internal static Task<RefreshResult> RefreshWithProgressAsync(IAnsiConsole console, IPredictionTables tables, string name, CancellationToken cancellationToken) =>
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask($"refresh {Markup.Escape(name)}");
                var progress = new Progress<RefreshProgress>(p =>
                {
                    task.MaxValue = Math.Max(1, p.RowsTotal);
                    task.Value = p.RowsDone;
                });
                var result = await tables.RefreshAsync(name, progress, cancellationToken);
                task.Value = task.MaxValue;
                return result;
            });

    private static Command List(CliContext cli)
    {
        var command = new Command("list", "List prediction tables and their last refresh.");
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            Print(cli.Console, await store.Tables.ListAsync(ct));
            return 0;
        });
        return command;
    }

    private static Command Status(CliContext cli)
    {
        var name = new Argument<string>("name") { Description = "The prediction table." };
        var command = new Command("status", "Show a prediction table's binding and last refresh.") { name };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var table = await store.Tables.GetAsync(parse.GetValue(name)!, ct);
            Print(cli.Console, [table]);
            cli.Console.MarkupLineInterpolated($"features: {table.Features.ToJsonString()}");
            cli.Console.MarkupLineInterpolated($"columns:  {string.Join(", ", table.Columns.Select(c => c.Name))}");
            if (store.Streaming.IsSupported)
            {
                var lag = await store.Streaming.GetLagAsync(table.Name, ct);
                if (lag.Watched)
                {
                    cli.Console.MarkupLineInterpolated($"streaming: watched; {lag.Waiting:N0} keys waiting, oldest {lag.OldestSeconds ?? 0:F3} s, {lag.RowsPerSecond:N0} rows/s");
                    if (lag.Error is { } error)
                    {
                        cli.Console.MarkupLineInterpolated($"[red]streaming is failing[/] (its keys stay waiting in the outbox and are retried): {error}");
                    }
                }
                else
                {
                    cli.Console.MarkupLineInterpolated($"streaming: not watched (start with: mad tables watch {table.Name})");
                }
            }

            return 0;
        });
        return command;
    }

    private static Command Watch(CliContext cli, bool watch)
    {
        var name = new Argument<string>("name") { Description = "The prediction table." };
        var command = new Command(watch ? "watch" : "unwatch", watch
            ? "Stream a prediction table: rows inserted, updated or deleted in its source are scored by running sidecars within milliseconds."
            : "Stop streaming a prediction table: removes its triggers and the keys still waiting.") { name };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            if (watch)
            {
                await store.Streaming.WatchAsync(parse.GetValue(name)!, ct);
                cli.Console.MarkupLineInterpolated($"Watching [bold]{parse.GetValue(name)}[/]: running sidecars (mad serve) score its changed rows. Lag: mad tables status {parse.GetValue(name)}");
            }
            else
            {
                await store.Streaming.UnwatchAsync(parse.GetValue(name)!, ct);
                cli.Console.MarkupLineInterpolated($"Stopped watching [bold]{parse.GetValue(name)}[/].");
            }
            return 0;
        });
        return command;
    }

    private static void Print(IAnsiConsole console, IReadOnlyList<PredictionTable> tables)
    {
        var view = new Table().AddColumns("name", "source", "key", "model", "output table", "refreshed", "version", "rows", "errors");
        foreach (var t in tables)
        {
            view.AddRow(Markup.Escape(t.Name), Markup.Escape(t.Source), Markup.Escape(string.Join(", ", t.Key)), Markup.Escape(t.Model), Markup.Escape(t.OutputTable),
                t.RefreshedAt?.ToString("u", System.Globalization.CultureInfo.InvariantCulture) ?? "never",
                t.RefreshedVersion?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-",
                t.RowsScored?.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) ?? "-",
                t.RowsFailed?.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) ?? "-");
        }

        console.Write(view);
    }
}

using System.CommandLine;
using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Core.Export;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Export;
using ModelAsData.Sqlite;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad export training-set</c> (docs/EXPORT.md): labelled rows for the next version, mixed, split and reproducible.</summary>
internal static class ExportCommand
{
    public static Command Create(CliContext cli)
    {
        var export = new Command("export", "Export data for training the next version.");
        export.Subcommands.Add(TrainingSet(cli));
        return export;
    }

    private static Command TrainingSet(CliContext cli)
    {
        var table = new Argument<string>("prediction_table") { Description = "The prediction table whose outcomes are bound (mad.set_outcomes), e.g. churn_scores; or a model's online requests, online:churn (PostgreSQL, mad_admin)." };
        var output = new Option<string>("--out") { Description = "The training file, e.g. train.csv; the holdout goes to train.holdout.csv and the manifest to train.manifest.json beside it.", Required = true };
        var format = new Option<string>("--format") { Description = "csv or parquet.", DefaultValueFactory = _ => "csv" };
        format.AcceptOnlyFromAmong("csv", "parquet");
        var newSince = new Option<string?>("--new-since") { Description = "Rows whose outcome was observed at or after this (ISO 8601, UTC unless an offset is given) are new, the others old." };
        var mix = new Option<double?>("--mix") { Description = "The exact share of new rows in each file, 0 to 1 (needs --new-since): 0.5 is half new, half old." };
        var rows = new Option<long?>("--rows") { Description = "The number of rows of both files together. With --mix it must be met exactly (or the error says the most that can); without, it is a cap. Default: as many as there are (with --mix, as many as the mix allows)." };
        var holdout = new Option<double>("--holdout") { Description = "The share of rows written to the holdout file, below 1; a key is never in both (split by its seeded bucket).", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Seeds the split and the row order: the same seed and data give the same files, byte for byte.", DefaultValueFactory = _ => 1 };
        var cutoff = new Option<string?>("--cutoff") { Description = "Leave out labels observed after this (ISO 8601, UTC unless an offset is given). Default: now, recorded in the manifest." };
        var command = new Command("training-set",
            "Join a prediction table's labels (read with your rights) to its features and the predictions served, mix old and new rows by an exact share, " +
            "split training and holdout by key, and write the files with a manifest (sources, cutoffs, counts, sha256).")
        {
            table, output, format, newSince, mix, rows, holdout, seed, cutoff,
        };
        cli.SetAction(command, async (parse, ct) =>
        {
            var request = new TrainingSetRequest
            {
                PredictionTable = parse.GetValue(table)!,
                Out = parse.GetValue(output)!,
                Format = parse.GetValue(format) == "parquet" ? TrainingSetFormat.Parquet : TrainingSetFormat.Csv,
                NewSince = ParseTime(parse.GetValue(newSince), "--new-since"),
                Mix = parse.GetValue(mix),
                Rows = parse.GetValue(rows),
                Holdout = parse.GetValue(holdout),
                Seed = parse.GetValue(seed),
                Cutoff = ParseTime(parse.GetValue(cutoff), "--cutoff"),
            };
            request.Validate();
            var db = cli.RequireDb(parse);
            if (!MadStore.IsPostgres(db))
            {
                // A SQLite file: the same rules in-process (SqliteTrainingSets).
                await using var registry = await SqliteModelRegistry.OpenAsync(db, ct);
                Report(cli.Console, request, await new SqliteTrainingSets(registry).ExportAsync(request, ct));
                return 0;
            }

            await using var dataSource = PostgresDataSource.Create(db, "mad export");
            var exports = new PostgresTrainingSets(dataSource);
            TrainingSetManifest manifest;
            try
            {
                manifest = await cli.Console.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .StartAsync(async context =>
                    {
                        var tasks = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
                        var progress = new SynchronousProgress(p =>
                        {
                            if (!tasks.TryGetValue(p.Part, out var task))
                            {
                                task = tasks[p.Part] = context.AddTask(Markup.Escape($"{p.Part}: {p.Total:N0} rows"), maxValue: Math.Max(p.Total, 1));
                            }

                            task.Value = p.Rows;
                        });
                        return await exports.ExportAsync(request, progress, ct);
                    });
            }
            catch (Npgsql.PostgresException e) when (e.SqlState == Npgsql.PostgresErrorCodes.InsufficientPrivilege)
            {
                throw new ModelAsDataException(ErrorCode.PermissionDenied, $"{e.MessageText}. The export reads the outcome source and the features with your own rights; no file was written.", e);
            }

            Report(cli.Console, request, manifest);
            return 0;
        });
        return command;
    }

    private static void Report(IAnsiConsole console, TrainingSetRequest request, TrainingSetManifest manifest)
    {
        foreach (var file in manifest.Files)
        {
            console.MarkupLineInterpolated(
                $"Wrote [bold]{file.File}[/] ({file.Part}): {file.Rows:N0} rows, {file.NewRows:N0} new and {file.OldRows:N0} old; sha256 {file.Sha256}.");
        }

        console.MarkupLineInterpolated($"Manifest: [bold]{TrainingSetFiles.Manifest(request.Out)}[/] (cutoff {manifest.Cutoff.UtcDateTime:O}, seed {manifest.Seed}).");
        if (manifest.Eligible.LabelsWithoutSourceRow > 0)
        {
            console.MarkupLineInterpolated($"[yellow]{manifest.Eligible.LabelsWithoutSourceRow:N0} label(s) have no row in {manifest.Source} and were left out.[/]");
        }
    }

    /// <summary>ISO 8601; a value without an offset is UTC (so --cutoff 2026-11-01 means midnight UTC wherever it runs).</summary>
    internal static DateTimeOffset? ParseTime(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var value)
            ? value
            : throw new ModelAsDataException(ErrorCode.InvalidArgument, $"{option} takes a date or time in ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00:00Z; got '{text}'.");
    }

    /// <summary>Reports on the exporting thread (Progress&lt;T&gt; would post to the thread pool and race the bar's last frame).</summary>
    private sealed class SynchronousProgress(Action<TrainingSetProgress> report) : IProgress<TrainingSetProgress>
    {
        public void Report(TrainingSetProgress value) => report(value);
    }
}

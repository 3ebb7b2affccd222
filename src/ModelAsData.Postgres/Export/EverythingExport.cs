using System.Data;
using ModelAsData.Core.Export;
using Npgsql;

namespace ModelAsData.Postgres.Export;

/// <summary>
/// An export that takes every row into one file (no <c>--mix</c>, <c>--holdout</c> or <c>--rows</c>; docs/EXPORT.md
/// "How it runs"): one COPY of the whole selection in file order, with no temporary table, while a second connection of
/// the same data source (so the same caller and rights), in the same snapshot (<c>pg_export_snapshot</c>), counts what
/// that COPY writes for the manifest. The count runs on the server's other core while the client reads the COPY.
/// </summary>
internal static class EverythingExport
{
    public static async Task<PostgresTrainingSets.Written> WriteAsync(NpgsqlDataSource dataSource, NpgsqlConnection connection, NpgsqlTransaction transaction,
        TrainingSetBinding binding, TrainingSetRequest request, DateTimeOffset cutoff, string path, IProgress<TrainingSetProgress>? progress,
        CancellationToken cancellationToken)
    {
        string snapshot;
        await using (var export = new NpgsqlCommand("SELECT pg_catalog.pg_export_snapshot()", connection))
        {
            snapshot = (string)(await export.ExecuteScalarAsync(cancellationToken))!;
        }

        var partial = TrainingSetFiles.Partial(path);
        var report = progress is null ? null : new PostgresTrainingSets.Progress(progress, "training", total: null);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var tally = TallyAsync(dataSource, snapshot, binding, cutoff, request.NewSince, stop.Token);
        var copy = request.Format == TrainingSetFormat.Parquet
            ? ParquetCopy.WriteAsync(connection, binding, TrainingSetSql.Everything(binding, cutoff, request.NewSince, request.Seed, "r.*"), partial, report, stop.Token)
            : PostgresTrainingSets.WriteCsvAsync(connection, TrainingSetSql.Everything(binding, cutoff, request.NewSince, request.Seed, TrainingSetSql.Columns(binding)), partial,
                report, stop.Token);
        try
        {
            // The first to fail stops the other. The COPY's own error is the one reported when it has one: a COPY that
            // fails aborts the transaction that exported the snapshot, so the count may fail first only because the
            // snapshot is gone ("could not import the requested snapshot"), while the COPY says why (say, 42501).
            var first = await Task.WhenAny(tally, copy);
            if (first.IsFaulted)
            {
                await stop.CancelAsync();
                await Task.WhenAll(Quietly(tally), Quietly(copy));
                await (copy.IsFaulted ? copy : first);
            }

            var counted = await tally;
            if (report is not null)
            {
                report.Total = counted.Eligible.TrainingNew + counted.Eligible.TrainingOld;
            }

            var sha = await copy;
            report?.Finish();
            var eligible = PostgresTrainingSets.Eligible(binding, cutoff, counted.Eligible);
            var rows = eligible.TrainingNew + eligible.TrainingOld;
            var file = new TrainingSetFile("training", Path.GetFileName(path), request.Format.ToString().ToLowerInvariant(), rows, eligible.TrainingNew, eligible.TrainingOld, sha);
            await transaction.CommitAsync(cancellationToken);
            File.Move(partial, path, overwrite: true);
            return counted with { Files = [file] };
        }
        catch
        {
            await stop.CancelAsync();
            await Task.WhenAll(Quietly(tally), Quietly(copy));
            File.Delete(partial);
            throw;
        }
    }

    /// <summary>What the COPY writes, counted in the same snapshot on a connection of its own.</summary>
    private static async Task<PostgresTrainingSets.Written> TallyAsync(NpgsqlDataSource dataSource, string snapshot, TrainingSetBinding binding, DateTimeOffset cutoff,
        DateTimeOffset? newSince, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
        await PostgresTrainingSets.ExecuteAsync(connection, $"SET TRANSACTION SNAPSHOT '{snapshot.Replace("'", "''", StringComparison.Ordinal)}'", cancellationToken);
        await PostgresTrainingSets.ExecuteAsync(connection, TrainingSetSql.Settings, cancellationToken);
        long newRows = 0, oldRows = 0, withoutRow = 0, unserved = 0;
        var versions = new SortedDictionary<int, long>();
        await using (var command = new NpgsqlCommand(TrainingSetSql.Tally(binding, cutoff, newSince), connection) { CommandTimeout = 0 })
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var n = reader.GetInt64(3);
                if (!reader.GetBoolean(0))
                {
                    withoutRow += n;
                    continue;
                }

                if (reader.GetBoolean(1))
                {
                    newRows += n;
                }
                else
                {
                    oldRows += n;
                }

                if (reader.IsDBNull(2))
                {
                    unserved += n;
                }
                else
                {
                    versions[reader.GetInt32(2)] = versions.GetValueOrDefault(reader.GetInt32(2)) + n;
                }
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return new PostgresTrainingSets.Written(new TrainingSetEligible(newRows, oldRows, 0, 0, withoutRow, unserved), [], versions, unserved);
    }

    private static async Task Quietly(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception)
        {
            // Reported by the caller: the first error, or the cancellation that followed it.
        }
    }
}

using System.Data;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ModelAsData.Core;
using ModelAsData.Core.Export;
using Npgsql;

namespace ModelAsData.Postgres.Export;

/// <summary>
/// <c>mad export training-set</c> on PostgreSQL (docs/EXPORT.md). Everything runs on one connection of the caller's
/// data source, in one REPEATABLE READ transaction, read with the caller's own rights. An export of every row into
/// one file is one COPY in file order (<see cref="EverythingExport"/>); with a mix, holdout or cap the candidates are
/// collected once into a temporary table, the plan is chosen from their counts, and each file is streamed out of a
/// COPY of it. CSV as PostgreSQL writes it, Parquet from a binary COPY in row groups, hashed as written. Nothing holds
/// all rows in memory. Files are written under a .partial name and renamed when complete; on any failure they are
/// removed and no manifest is written.
/// </summary>
public sealed class PostgresTrainingSets(NpgsqlDataSource dataSource)
{
    /// <summary>Writes the files and the manifest; returns the manifest.</summary>
    public async Task<TrainingSetManifest> ExportAsync(TrainingSetRequest request, IProgress<TrainingSetProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
        await ExecuteAsync(connection, TrainingSetSql.Settings, cancellationToken);
        var binding = await ReadBindingAsync(connection, request.PredictionTable, cancellationToken);
        var cutoff = request.Cutoff ?? await ScalarAsync<DateTime>(connection, "SELECT date_trunc('milliseconds', now())", cancellationToken) switch
        {
            var now => new DateTimeOffset(DateTime.SpecifyKind(now, DateTimeKind.Utc)),
        };
        if (request.NewSince is { } since && cutoff < since)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"The cutoff {cutoff.UtcDateTime:O} (now, as no --cutoff was given) is before --new-since {since.UtcDateTime:O}: no label could be new.");
        }

        var training = Path.GetFullPath(request.Out);
        var written = request.Mix is null && request.Rows is null && request.Holdout == 0
            ? await EverythingExport.WriteAsync(dataSource, connection, transaction, binding, request, cutoff, training, progress, cancellationToken)
            : await WritePlannedAsync(connection, transaction, binding, request, cutoff, training, progress, cancellationToken);
        var (eligible, files, versions, unserved) = written;

        var manifest = TrainingSetManifest.Of(request, binding.Name, binding.Source, binding.KeyColumns, binding.FeatureColumns,
            new TrainingSetOutcomes(binding.OutcomeSource, binding.OutcomeKeyColumns, binding.LabelColumn, binding.ObservedAtColumn), versions, unserved, cutoff, eligible, files);
        await File.WriteAllTextAsync(TrainingSetFiles.Manifest(training), manifest.ToJson(), cancellationToken);
        return manifest;
    }

    /// <summary>
    /// An export with a mix, a holdout or a cap: the candidates into a temporary table, the plan from its counts, then
    /// each file's rows out of it in hash order.
    /// </summary>
    private static async Task<Written> WritePlannedAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, TrainingSetBinding binding,
        TrainingSetRequest request, DateTimeOffset cutoff, string training, IProgress<TrainingSetProgress>? progress, CancellationToken cancellationToken)
    {
        await ExecuteAsync(connection, TrainingSetSql.Candidates(binding, cutoff, request.NewSince, request.Seed, request.Holdout), cancellationToken);
        var eligible = await CountAsync(connection, binding, cutoff, cancellationToken);
        var plan = TrainingSetPlan.Choose(request, eligible.TrainingNew, eligible.TrainingOld, eligible.HoldoutNew, eligible.HoldoutOld);

        var parts = new List<(string Part, string Path, bool Holdout, PartCounts Counts)> { ("training", training, false, plan.Training) };
        if (request.Holdout > 0)
        {
            parts.Add(("holdout", TrainingSetFiles.Holdout(training), true, plan.Holdout));
        }

        var files = new List<TrainingSetFile>();
        var versions = new SortedDictionary<int, long>();
        long unserved = 0;
        var written = new List<string>();
        try
        {
            foreach (var (part, path, holdout, counts) in parts)
            {
                var take = plan.ByKind ? (counts.New, counts.Old) : (counts.Rows, 0L);
                var selection = TrainingSetSql.Selection(holdout, plan.ByKind, take.Item1, take.Item2, "*", wholePool: counts);
                long rows = 0, newRows = 0;
                await using (var read = new NpgsqlCommand(TrainingSetSql.Versions(selection), connection))
                await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
                {
                    while (await reader.ReadAsync(cancellationToken))
                    {
                        var n = reader.GetInt64(1);
                        rows += n;
                        newRows += reader.GetInt64(2);
                        if (reader.IsDBNull(0))
                        {
                            unserved += n;
                        }
                        else
                        {
                            versions[reader.GetInt32(0)] = versions.GetValueOrDefault(reader.GetInt32(0)) + n;
                        }
                    }
                }

                var partial = TrainingSetFiles.Partial(path);
                written.Add(partial);
                var report = progress is null ? null : new Progress(progress, part, rows);
                var sha = request.Format == TrainingSetFormat.Parquet
                    ? await ParquetCopy.WriteAsync(connection, binding, TrainingSetSql.Selection(holdout, plan.ByKind, take.Item1, take.Item2, "r.*"), partial, report, cancellationToken)
                    : await WriteCsvAsync(connection, TrainingSetSql.Selection(holdout, plan.ByKind, take.Item1, take.Item2, TrainingSetSql.Columns(binding)), partial, report, cancellationToken);
                files.Add(new TrainingSetFile(part, Path.GetFileName(path), request.Format.ToString().ToLowerInvariant(), rows, newRows, rows - newRows, sha));
            }

            await transaction.CommitAsync(cancellationToken);
            foreach (var (_, path, _, _) in parts)
            {
                File.Move(TrainingSetFiles.Partial(path), path, overwrite: true);
            }
        }
        catch
        {
            foreach (var file in written)
            {
                File.Delete(file);
            }

            throw;
        }

        return new Written(eligible, files, versions, unserved);
    }

    private static async Task<TrainingSetBinding> ReadBindingAsync(NpgsqlConnection connection, string name, CancellationToken cancellationToken)
    {
        var online = name.StartsWith("online:", StringComparison.Ordinal);  // a model's online traffic (051)
        await using var command = new NpgsqlCommand(online ? TrainingSetSql.OnlineBinding : TrainingSetSql.Binding, connection) { Parameters = { new() { Value = name } } };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (online && !await reader.ReadAsync(cancellationToken))
        {
            throw new ModelAsDataException(ErrorCode.NotFound,
                $"The online requests of model {name["online:".Length..]} have no outcomes bound, so there are no labels to export. Bind them (mad_admin): SELECT mad.set_outcomes('{name}', source => 'public.events', key => '{{customer_id}}', label => 'label', observed_at => 'observed_at');");
        }

        if (!online && !await reader.ReadAsync(cancellationToken))
        {
            throw new ModelAsDataException(ErrorCode.NotFound, $"There is no prediction table {name}. List them with: mad tables list");
        }

        if (reader.IsDBNull(4))
        {
            throw new ModelAsDataException(ErrorCode.NotFound,
                $"Prediction table {name} has no outcomes bound, so there are no labels to export. Bind them: SELECT mad.set_outcomes('{name}', source => 'public.events', key => '{{id}}', label => 'label', observed_at => 'observed_at');");
        }

        return new TrainingSetBinding(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<string[]>(2), reader.GetFieldValue<string[]>(3),
            reader.GetString(4), reader.GetFieldValue<string[]>(5), reader.GetString(6), reader.GetString(7));
    }

    private static async Task<TrainingSetEligible> CountAsync(NpgsqlConnection connection, TrainingSetBinding binding, DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        long trainingNew = 0, trainingOld = 0, holdoutNew = 0, holdoutOld = 0, withoutRow = 0, withoutPrediction = 0;
        await using (var command = new NpgsqlCommand(TrainingSetSql.Counts, connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var n = reader.GetInt64(2);
                switch (reader.GetBoolean(0), reader.GetBoolean(1))
                {
                    case (false, true): trainingNew = n; break;
                    case (false, false): trainingOld = n; break;
                    case (true, true): holdoutNew = n; break;
                    default: holdoutOld = n; break;
                }

                withoutRow += reader.GetInt64(3);
                withoutPrediction += reader.GetInt64(4);
            }
        }

        return Eligible(binding, cutoff, new TrainingSetEligible(trainingNew, trainingOld, holdoutNew, holdoutOld, withoutRow, withoutPrediction));
    }

    /// <summary>The counts, or the error that says why there is nothing to export.</summary>
    internal static TrainingSetEligible Eligible(TrainingSetBinding binding, DateTimeOffset cutoff, TrainingSetEligible eligible)
    {
        var withoutRow = eligible.LabelsWithoutSourceRow;
        if (eligible.TrainingNew + eligible.TrainingOld + eligible.HoldoutNew + eligible.HoldoutOld == 0)
        {
            var c = CultureInfo.InvariantCulture;
            throw new ModelAsDataException(ErrorCode.NotFound, withoutRow == 0
                ? $"No labels yet: {binding.OutcomeSource} has no row with {binding.LabelColumn} set and {binding.ObservedAtColumn} at or before the cutoff {cutoff.UtcDateTime:O}."
                : string.Create(c, $"None of the {withoutRow:N0} label(s) in {binding.OutcomeSource} observed by {cutoff.UtcDateTime:O} has a row in {binding.Source}: no features to export. Check that outcome key ({string.Join(", ", binding.OutcomeKeyColumns)}) holds the same values as the table's key ({string.Join(", ", binding.KeyColumns)})."));
        }

        return eligible;
    }

    /// <summary>
    /// COPY … (FORMAT csv, HEADER) into the file: PostgreSQL writes the CSV; Npgsql hands text COPY out as characters
    /// (it refuses a raw byte stream for text formats), so they are encoded back to UTF-8 here, hashed and written.
    /// </summary>
    internal static async Task<string> WriteCsvAsync(NpgsqlConnection connection, string selection, string path, Progress? progress, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        var encoder = utf8.GetEncoder();
        var chars = new char[1 << 15];
        var bytes = new byte[utf8.GetMaxByteCount(chars.Length)];
        await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
        using (var copy = await connection.BeginTextExportAsync($"COPY ({selection}) TO STDOUT (FORMAT csv, HEADER true)", cancellationToken))
        {
            long lines = 0;
            int read;
            while ((read = await copy.ReadAsync(chars.AsMemory(), cancellationToken)) > 0)
            {
                var n = encoder.GetBytes(chars, 0, read, bytes, 0, flush: false);
                hash.AppendData(bytes, 0, n);
                await file.WriteAsync(bytes.AsMemory(0, n), cancellationToken);
                if (progress is not null)
                {
                    lines += chars.AsSpan(0, read).Count('\n');
                    progress.Report(Math.Max(lines - 1, 0));
                }
            }

            var last = encoder.GetBytes([], 0, 0, bytes, 0, flush: true);
            hash.AppendData(bytes, 0, last);
            await file.WriteAsync(bytes.AsMemory(0, last), cancellationToken);
        }

        progress?.Finish();
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    internal static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>What an export wrote: the pools' counts, the files, and the exported rows by the version that served them (unserved: none).</summary>
    internal sealed record Written(TrainingSetEligible Eligible, List<TrainingSetFile> Files, SortedDictionary<int, long> Versions, long Unserved);

    /// <summary>
    /// One file's progress, reported at most every 10,000 rows, and only once its total is known (an export that counts
    /// beside its COPY learns it while writing).
    /// </summary>
    internal sealed class Progress(IProgress<TrainingSetProgress> sink, string part, long? total)
    {
        private long _last = -1;

        public long? Total { get; set; } = total;

        public void Report(long rows)
        {
            if (Total is { } all && (rows >= all || rows - _last >= 10_000))
            {
                _last = Math.Min(rows, all);
                sink.Report(new TrainingSetProgress(part, _last, all));
            }
        }

        /// <summary>The file is complete: its total, once known.</summary>
        public void Finish()
        {
            if (Total is { } all)
            {
                Report(all);
            }
        }
    }
}

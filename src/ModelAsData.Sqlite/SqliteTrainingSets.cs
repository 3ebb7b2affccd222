using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using ModelAsData.Core.Export;

namespace ModelAsData.Sqlite;

/// <summary>
/// <c>mad export training-set</c> on a SQLite file (docs/EXPORT.md), by PostgreSQL's rules: each key's latest label
/// observed by the cutoff, its source row as it is now, the prediction in force when the label was observed (from
/// mad_history and the current rows), the holdout and the order by the seeded sticky bucket, the exact mix of
/// <see cref="TrainingSetPlan"/>, the same manifest. So the same data and seed select the same rows in the same order
/// as on PostgreSQL, and the same bytes on every run; values are written as SQLite holds them (see the docs). One read
/// transaction; files under a .partial name, renamed when complete, removed on any failure. CSV or Parquet.
/// </summary>
public sealed class SqliteTrainingSets(SqliteModelRegistry registry)
{
    internal sealed record Candidate(string Key, byte[] KeyBytes, object?[] Features, string Label, object LabelValue, DateTimeOffset ObservedAt, double Bucket, bool Holdout, bool New,
        Core.Monitoring.ServedPrediction? Served);

    private sealed record Binding(string Source, string KeyColumns, string LabelColumn, string ObservedAtColumn);

    public async Task<TrainingSetManifest> ExportAsync(TrainingSetRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        var connection = registry.Connection;
        using var transaction = connection.BeginTransaction(deferred: true); // one snapshot for every read
        var table = await new SqlitePredictionTables(registry).GetAsync(request.PredictionTable, cancellationToken);
        var binding = await connection.QuerySingleOrDefaultAsync<Binding>(new CommandDefinition(
            "SELECT source AS Source, key_columns AS KeyColumns, label_column AS LabelColumn, observed_at_column AS ObservedAtColumn FROM mad_outcomes WHERE prediction_table = @Name",
            table, transaction, cancellationToken: cancellationToken))
            ?? throw new ModelAsDataException(ErrorCode.NotFound,
                $"Prediction table {table.Name} has no outcomes bound, so there are no labels to export. Bind them: mad outcomes set {table.Name} --source TABLE --key {string.Join(" ", table.Key)} --label COLUMN --observed-at COLUMN");
        var slots = JsonSerializer.Deserialize<string[]>(await connection.ExecuteScalarAsync<string>(new CommandDefinition(
            "SELECT feature_columns FROM mad_prediction_tables WHERE name = @Name", table, transaction, cancellationToken: cancellationToken)) ?? "[]")!;
        var features = slots.Where(c => !table.Key.Contains(c, StringComparer.Ordinal)).Distinct(StringComparer.Ordinal).ToList();
        var outcomeKey = JsonSerializer.Deserialize<string[]>(binding.KeyColumns)!;
        var (labelOut, observedOut) = (Unclashed(binding.LabelColumn, table.Key, features), Unclashed(binding.ObservedAtColumn, table.Key, features));
        string[] columns = [.. table.Key, .. features, labelOut, observedOut, "served_version", "served_arm", "served_outputs", "served_at", "served_device"];
        var cutoff = request.Cutoff ?? DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        if (request.NewSince is { } since && cutoff < since)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"The cutoff {cutoff.UtcDateTime:O} (now, as no --cutoff was given) is before --new-since {since.UtcDateTime:O}: no label could be new.");
        }

        // Each key's latest label by the cutoff (equal times: the greater label text), as the candidates' CTE on PostgreSQL.
        var labels = new Dictionary<string, (string Label, object Value, DateTimeOffset ObservedAt)>(StringComparer.Ordinal);
        await using (var command = connection.CreateCommand())
        {
            var (label, observed) = (SqliteDatabase.Quote(binding.LabelColumn), SqliteDatabase.Quote(binding.ObservedAtColumn));
            command.CommandText = $"SELECT {SqliteOutcomeReports.KeyTextSql("o", outcomeKey)}, o.{label}, o.{observed} FROM {SqliteDatabase.Quote(binding.Source)} o " +
                $"WHERE o.{label} IS NOT NULL AND o.{observed} IS NOT NULL AND {string.Join(" AND ", outcomeKey.Select(k => $"o.{SqliteDatabase.Quote(k)} IS NOT NULL"))}";
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var at = SqliteOutcomeReports.ObservedAt(binding.Source, binding.ObservedAtColumn, reader.GetValue(2));
                var text = SqliteOutcomeReports.Text(reader.GetValue(1));
                if (at <= cutoff && (!labels.TryGetValue(reader.GetString(0), out var seen) || at > seen.ObservedAt || (at == seen.ObservedAt && string.CompareOrdinal(text, seen.Label) > 0)))
                {
                    labels[reader.GetString(0)] = (text, reader.GetValue(1), at);
                }
            }
        }

        // The prediction in force when each label was observed: the key's latest served row scored at or before it.
        var graded = new Dictionary<string, Core.Monitoring.ServedPrediction>(StringComparer.Ordinal);
        foreach (var s in await SqliteOutcomeReports.ServedAsync(connection, table, cancellationToken))
        {
            if (s.ScoredAt <= cutoff && labels.TryGetValue(s.Key, out var l) && s.ScoredAt <= l.ObservedAt && (!graded.TryGetValue(s.Key, out var g) || s.ScoredAt > g.ScoredAt))
            {
                graded[s.Key] = s;
            }
        }

        // The source rows of the labelled keys, as they are now.
        var rows = new Dictionary<string, object?[]>(StringComparer.Ordinal);
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = $"SELECT {SqliteOutcomeReports.KeyTextSql("f", table.Key)}, {string.Join(", ", table.Key.Concat(features).Select(c => "f." + SqliteDatabase.Quote(c)))} FROM {SqliteDatabase.Quote(table.Source)} f";
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                if (!reader.IsDBNull(0) && labels.ContainsKey(reader.GetString(0)))
                {
                    var values = new object?[table.Key.Count + features.Count];
                    for (var i = 0; i < values.Length; i++)
                    {
                        values[i] = reader.IsDBNull(i + 1) ? null : reader.GetValue(i + 1);
                    }

                    rows[reader.GetString(0)] = values;
                }
            }
        }

        var candidates = new List<Candidate>();
        long withoutRow = 0;
        foreach (var (key, (label, value, observedAt)) in labels)
        {
            if (!rows.TryGetValue(key, out var values))
            {
                withoutRow++;
                continue;
            }

            var bucket = StickyBucket.Of(request.Seed, key);
            candidates.Add(new Candidate(key, Encoding.UTF8.GetBytes(key), values, label, value, observedAt, bucket, bucket < request.Holdout,
                request.NewSince is { } s && observedAt >= s, graded.GetValueOrDefault(key)));
        }

        if (candidates.Count == 0)
        {
            throw new ModelAsDataException(ErrorCode.NotFound, withoutRow == 0
                ? $"No labels yet: {binding.Source} has no row with {binding.LabelColumn} set and {binding.ObservedAtColumn} at or before the cutoff {cutoff.UtcDateTime:O}."
                : string.Create(CultureInfo.InvariantCulture, $"None of the {withoutRow:N0} label(s) in {binding.Source} observed by {cutoff.UtcDateTime:O} has a row in {table.Source}: no features to export. Check that outcome key ({string.Join(", ", outcomeKey)}) holds the same values as the table's key ({string.Join(", ", table.Key)})."));
        }

        long Count(bool holdout, bool isNew) => candidates.LongCount(c => c.Holdout == holdout && c.New == isNew);
        var eligible = new TrainingSetEligible(Count(false, true), Count(false, false), Count(true, true), Count(true, false), withoutRow, candidates.LongCount(c => c.Served is null));
        var plan = TrainingSetPlan.Choose(request, eligible.TrainingNew, eligible.TrainingOld, eligible.HoldoutNew, eligible.HoldoutOld);

        var training = Path.GetFullPath(request.Out);
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
                // The pool in hash order (bucket, then key in byte order); with kinds, the first new and the first old rows.
                var pool = candidates.Where(c => c.Holdout == holdout).OrderBy(c => c.Bucket).ThenBy(c => c.KeyBytes, ByteOrder.Instance).ToList();
                var chosen = plan.ByKind
                    ? pool.Where(c => c.New).Take(checked((int)counts.New)).Concat(pool.Where(c => !c.New).Take(checked((int)counts.Old)))
                        .OrderBy(c => c.Bucket).ThenBy(c => c.KeyBytes, ByteOrder.Instance).ToList()
                    : pool.Take(checked((int)counts.Rows)).ToList();
                foreach (var c in chosen)
                {
                    if (c.Served is { } s)
                    {
                        versions[s.Version] = versions.GetValueOrDefault(s.Version) + 1;
                    }
                    else
                    {
                        unserved++;
                    }
                }

                var partial = TrainingSetFiles.Partial(path);
                written.Add(partial);
                var sha = request.Format == TrainingSetFormat.Parquet
                    ? await SqliteTrainingSetParquet.WriteAsync(partial, columns, await KindsAsync(connection, transaction, table, features, binding, cancellationToken), chosen, cancellationToken)
                    : await WriteCsvAsync(partial, columns, chosen, cancellationToken);
                var newRows = chosen.LongCount(c => c.New);
                files.Add(new TrainingSetFile(part, Path.GetFileName(path), request.Format.ToString().ToLowerInvariant(), chosen.Count, newRows, chosen.Count - newRows, sha));
            }

            transaction.Commit();
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

        var manifest = TrainingSetManifest.Of(request, table.Name, table.Source, table.Key, features,
            new TrainingSetOutcomes(binding.Source, outcomeKey, binding.LabelColumn, binding.ObservedAtColumn), versions, unserved, cutoff, eligible, files);
        await File.WriteAllTextAsync(TrainingSetFiles.Manifest(training), manifest.ToJson(), cancellationToken);
        return manifest;
    }

    /// <summary>The Parquet type of each exported column: the key, features and label by their declared SQLite types, then the fixed ones.</summary>
    private static async Task<SqliteTrainingSetParquet.Kind[]> KindsAsync(Microsoft.Data.Sqlite.SqliteConnection connection, Microsoft.Data.Sqlite.SqliteTransaction transaction,
        Core.Registry.PredictionTable table, IReadOnlyList<string> features, Binding binding, CancellationToken cancellationToken)
    {
        async Task<Dictionary<string, string>> DeclaredAsync(string relation) =>
            (await connection.QueryAsync<(string Name, string Type)>(new CommandDefinition("SELECT name, type FROM pragma_table_info(@relation)", new { relation }, transaction,
                cancellationToken: cancellationToken))).ToDictionary(c => c.Name, c => c.Type, StringComparer.OrdinalIgnoreCase);
        var source = await DeclaredAsync(table.Source);
        var outcomes = await DeclaredAsync(binding.Source);
        return [.. table.Key.Concat(features).Select(c => SqliteTrainingSetParquet.KindOf(source.GetValueOrDefault(c))),
            SqliteTrainingSetParquet.KindOf(outcomes.GetValueOrDefault(binding.LabelColumn)),
            SqliteTrainingSetParquet.Kind.Timestamp, SqliteTrainingSetParquet.Kind.Int32, SqliteTrainingSetParquet.Kind.Text, SqliteTrainingSetParquet.Kind.Text, SqliteTrainingSetParquet.Kind.Timestamp,
            SqliteTrainingSetParquet.Kind.Text];
    }

    /// <summary>RFC 4180 as PostgreSQL's COPY CSV writes it: a header, empty for NULL, quotes only where needed ("" for an empty string), LF line ends.</summary>
    private static async Task<string> WriteCsvAsync(string path, IReadOnlyList<string> columns, IReadOnlyList<Candidate> rows, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        text.AppendJoin(',', columns.Select(c => Field(c))).Append('\n');
        foreach (var r in rows)
        {
            foreach (var value in r.Features)
            {
                text.Append(Field(Value(value))).Append(',');
            }

            text.Append(Field(r.Label)).Append(',').Append(Time(r.ObservedAt)).Append(',');
            if (r.Served is { } s)
            {
                text.Append(s.Version.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Field(s.Arm)).Append(',').Append(Field(JsonbText(s.Outputs))).Append(',').Append(Time(s.ScoredAt));
            }
            else
            {
                text.Append(",,,");
            }

            // served_device: empty, as PostgreSQL's export leaves it for its own table's rows; a device file's rows are its own.
            text.Append(",\n");
        }

        var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text.ToString());
        await File.WriteAllBytesAsync(path, bytes, cancellationToken);
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }

    private static string? Value(object? value) => value switch
    {
        null => null,
        double d => FloatText(d),
        byte[] b => "\\x" + Convert.ToHexStringLower(b),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    /// <summary>A float8 as PostgreSQL writes it with extra_float_digits = 1: the shortest exact digits, exponents as 1e+20.</summary>
    private static string FloatText(double d) => double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity"
        : d.ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e');

    /// <summary>
    /// JSON as PostgreSQL's jsonb prints it, so served_outputs reads the same on both stores: keys by length, then
    /// bytes; ": " and ", " between; numbers as written; strings escaped as jsonb escapes them.
    /// </summary>
    internal static string JsonbText(System.Text.Json.Nodes.JsonNode? node)
    {
        var text = new StringBuilder();
        Write(node);
        return text.ToString();

        void Write(System.Text.Json.Nodes.JsonNode? n)
        {
            switch (n)
            {
                case null:
                    text.Append("null");
                    break;
                case System.Text.Json.Nodes.JsonObject o:
                    text.Append('{');
                    var first = true;
                    foreach (var (k, v) in o.Select(p => (p.Key, p.Value)).OrderBy(p => Encoding.UTF8.GetByteCount(p.Key)).ThenBy(p => Encoding.UTF8.GetBytes(p.Key), ByteOrder.Instance))
                    {
                        text.Append(first ? "" : ", ");
                        first = false;
                        String(k);
                        text.Append(": ");
                        Write(v);
                    }

                    text.Append('}');
                    break;
                case System.Text.Json.Nodes.JsonArray a:
                    text.Append('[');
                    for (var i = 0; i < a.Count; i++)
                    {
                        text.Append(i == 0 ? "" : ", ");
                        Write(a[i]);
                    }

                    text.Append(']');
                    break;
                default:
                    if (n.GetValueKind() == JsonValueKind.String)
                    {
                        String(n.GetValue<string>());
                    }
                    else
                    {
                        text.Append(n.ToJsonString());
                    }

                    break;
            }
        }

        void String(string value)
        {
            text.Append('"');
            foreach (var c in value)
            {
                text.Append(c switch
                {
                    '"' => "\\\"",
                    '\\' => "\\\\",
                    '\b' => "\\b",
                    '\f' => "\\f",
                    '\n' => "\\n",
                    '\r' => "\\r",
                    '\t' => "\\t",
                    < ' ' => $"\\u{(int)c:x4}",
                    _ => c.ToString(),
                });
            }

            text.Append('"');
        }
    }

    private static string Field(string? value) =>
        value is null ? ""
        : value.Length == 0 || value == "\\." || value.AsSpan().IndexOfAny(",\"\n\r") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\""
        : value;

    /// <summary>A timestamptz as PostgreSQL writes it in UTC with ISO dates: seconds, a fraction only when there is one, then +00.</summary>
    private static string Time(DateTimeOffset at)
    {
        var utc = at.UtcDateTime;
        var fraction = utc.ToString("ffffff", CultureInfo.InvariantCulture).TrimEnd('0');
        return utc.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + (fraction.Length > 0 ? "." + fraction : "") + "+00";
    }

    private static string Unclashed(string column, IReadOnlyList<string> key, IReadOnlyList<string> features) =>
        key.Contains(column, StringComparer.Ordinal) || features.Contains(column, StringComparer.Ordinal) || column.StartsWith("served_", StringComparison.Ordinal)
            ? "outcome_" + column
            : column;

    /// <summary>Keys in byte order of their UTF-8, as PostgreSQL's COLLATE "C".</summary>
    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}

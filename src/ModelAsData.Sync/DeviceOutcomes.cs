using System.Globalization;
using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Sync;

/// <summary>An outcome source bound to a prediction table, in the words of PostgreSQL's mad.set_outcomes.</summary>
public sealed record OutcomeBinding(string PredictionTable, string Source, IReadOnlyList<string> Key, string Label, string ObservedAt);

/// <summary>
/// Outcomes recorded on a device (docs/SYNC.md "Outcomes"): the binding of an outcome source in the SQLite file
/// (mad_outcomes, as mad.outcomes centrally), and a push's copy of each bound source's labelled rows into the staging
/// table mad.begin_push_outcomes made. Keys are spelled as mad.key_text spells them.
/// </summary>
public static class DeviceOutcomes
{
    private const string Copy = "COPY pg_temp.mad_push_outcomes (prediction_table, key, label, observed_at) FROM STDIN (FORMAT BINARY)";

    /// <summary>
    /// Binds (or binds again) the outcome source of a prediction table in the SQLite file: the table must exist, the
    /// key must have as many columns as the table's key, and the source must have every named column.
    /// </summary>
    public static async Task SetAsync(SqliteConnection connection, OutcomeBinding binding, CancellationToken cancellationToken = default)
    {
        var keyColumns = await connection.QuerySingleOrDefaultAsync<string?>(new CommandDefinition(
            "SELECT key_columns FROM mad_prediction_tables WHERE name = @PredictionTable", binding, cancellationToken: cancellationToken))
            ?? throw new ModelAsDataException(ErrorCode.NotFound,
                $"There is no prediction table '{binding.PredictionTable}' in this file; create it first (`mad tables create {binding.PredictionTable} ...`).");
        var tableKey = JsonSerializer.Deserialize<string[]>(keyColumns)!;
        if (binding.Key.Count != tableKey.Length)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"The outcome key ({string.Join(", ", binding.Key)}) has {binding.Key.Count} column(s); prediction table '{binding.PredictionTable}' is keyed on {tableKey.Length} ({string.Join(", ", tableKey)}). Name the source's columns that hold the same key, in the same order.");
        }

        var columns = (await connection.QueryAsync<string>(new CommandDefinition(
            "SELECT name FROM pragma_table_info(@Source)", binding, cancellationToken: cancellationToken))).ToList();
        if (columns.Count == 0)
        {
            throw new ModelAsDataException(ErrorCode.NotFound, $"There is no table or view '{binding.Source}' in this file to read outcomes from.");
        }

        foreach (var column in binding.Key.Append(binding.Label).Append(binding.ObservedAt))
        {
            if (!columns.Contains(column, StringComparer.OrdinalIgnoreCase))
            {
                throw new ModelAsDataException(ErrorCode.NotFound,
                    $"Outcome source '{binding.Source}' has no column '{column}'; its columns: {string.Join(", ", columns)}.");
            }
        }

        await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO mad_outcomes (prediction_table, source, key_columns, label_column, observed_at_column, created_by, created_at)
            VALUES (@PredictionTable, @Source, @key, @Label, @ObservedAt, @by, @at)
            ON CONFLICT (prediction_table) DO UPDATE SET source = excluded.source, key_columns = excluded.key_columns, label_column = excluded.label_column,
                observed_at_column = excluded.observed_at_column, created_by = excluded.created_by, created_at = excluded.created_at
            """,
            new { binding.PredictionTable, binding.Source, key = JsonSerializer.Serialize(binding.Key), binding.Label, binding.ObservedAt, by = Environment.UserName, at = SyncTime.Now() },
            cancellationToken: cancellationToken));
    }

    private sealed record BindingRow(string PredictionTable, string Source, string KeyColumns, string LabelColumn, string ObservedAtColumn);

    /// <summary>Copies every bound source's rows that carry a label; returns how many were read.</summary>
    internal static async Task<long> CopyAsync(SqliteConnection device, NpgsqlConnection central, CancellationToken cancellationToken)
    {
        var bindings = device.Query<BindingRow>("""
            SELECT prediction_table AS PredictionTable, source AS Source, key_columns AS KeyColumns, label_column AS LabelColumn, observed_at_column AS ObservedAtColumn
            FROM mad_outcomes ORDER BY prediction_table
            """).ToList();
        long read = 0;
        await using var importer = await central.BeginBinaryImportAsync(Copy, cancellationToken);
        foreach (var binding in bindings)
        {
            var keys = JsonSerializer.Deserialize<string[]>(binding.KeyColumns)!;
            using var command = device.CreateCommand();
            command.CommandText = $"SELECT {string.Join(", ", keys.Append(binding.LabelColumn).Append(binding.ObservedAtColumn).Select(SqliteDatabase.Quote))} " +
                $"FROM {SqliteDatabase.Quote(binding.Source)} WHERE {SqliteDatabase.Quote(binding.LabelColumn)} IS NOT NULL";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var key = string.Join('\u001F', Enumerable.Range(0, keys.Length).Select(i => Text(reader.GetValue(i))));
                var observed = reader.GetValue(keys.Length + 1);
                await importer.StartRowAsync(cancellationToken);
                await importer.WriteAsync(binding.PredictionTable, NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(key, NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(Text(reader.GetValue(keys.Length)), NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(ObservedAt(binding, observed), NpgsqlDbType.TimestampTz, cancellationToken);
                read++;
            }
        }

        await importer.CompleteAsync(cancellationToken);
        return read;
    }

    private static string Text(object value) => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";

    /// <summary>When a label was observed: ISO-8601 text (read as UTC when it names no zone), or Unix seconds.</summary>
    private static DateTime ObservedAt(BindingRow binding, object value) => value switch
    {
        string s when DateTime.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var at) => at,
        long seconds => DateTime.UnixEpoch.AddSeconds(seconds),
        double seconds => DateTime.UnixEpoch.AddSeconds(seconds),
        DBNull => throw new ModelAsDataException(ErrorCode.InvalidArgument,
            $"Outcome source '{binding.Source}' has a labelled row without {binding.ObservedAtColumn}: every outcome needs the time it was observed; nothing was pushed."),
        _ => throw new ModelAsDataException(ErrorCode.InvalidArgument,
            $"Outcome source '{binding.Source}' column {binding.ObservedAtColumn} holds '{value}', which is not a time (ISO-8601 text or Unix seconds); nothing was pushed."),
    };
}

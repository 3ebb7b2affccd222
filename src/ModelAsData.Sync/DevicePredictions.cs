using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Sync;

/// <summary>
/// A push's predictions: every scored row of every prediction table in the device file (rows whose error is set
/// stay on the device), binary-COPied into the staging table mad.begin_device_push made. The key is spelled as
/// mad.key_text spells it (key columns' text joined by U+001F); the outputs are one JSON object per row.
/// </summary>
internal static class DevicePredictions
{
    private const string Copy = "COPY pg_temp.mad_push_rows (prediction_table, key, model, version, arm, outputs, scored_at) FROM STDIN (FORMAT BINARY)";

    private sealed record DeviceTable(string Name, string Model, string KeyColumns, string Columns);

    /// <summary>Copies the rows; returns how many were read.</summary>
    public static async Task<long> CopyAsync(SqliteConnection device, NpgsqlConnection central, CancellationToken cancellationToken)
    {
        var tables = device.Query<DeviceTable>("SELECT name AS Name, model AS Model, key_columns AS KeyColumns, columns AS Columns FROM mad_prediction_tables ORDER BY name").ToList();
        long read = 0;
        await using var importer = await central.BeginBinaryImportAsync(Copy, cancellationToken);
        var buffer = new ArrayBufferWriter<byte>(256);
        await using var json = new Utf8JsonWriter(buffer);
        var key = new StringBuilder();
        foreach (var table in tables)
        {
            var model = ModelReference.Parse(table.Model).Model;
            var keys = JsonSerializer.Deserialize<string[]>(table.KeyColumns)!;
            // The decoded output columns: [{"name": ..., ...}, ...] as the embedded store records them.
            var outputs = JsonNode.Parse(table.Columns)!.AsArray().Select(c => c is JsonValue v ? v.GetValue<string>() : (string)(c!["name"] ?? c["Name"])!).ToArray();
            var names = outputs.Select(o => JsonEncodedText.Encode(o)).ToArray();
            var output = SqlitePredictionTables.OutputTableOf(table.Name);
            var hasArm = device.ExecuteScalar<long>("SELECT count(*) FROM pragma_table_info(@output) WHERE name = 'arm'", new { output }) > 0;
            var columns = keys.Concat(outputs).Select(SqliteDatabase.Quote)
                .Concat(["model_version", "scored_at", hasArm ? "arm" : "'champion'"]);
            using var command = device.CreateCommand();
            command.CommandText = $"SELECT {string.Join(", ", columns)} FROM {SqliteDatabase.Quote(output)} WHERE error IS NULL";
            using var reader = command.ExecuteReader();
            var at = keys.Length + outputs.Length;
            while (reader.Read())
            {
                key.Clear();
                for (var i = 0; i < keys.Length; i++)
                {
                    if (i > 0)
                    {
                        key.Append('\u001F');
                    }

                    key.Append(Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture));
                }

                buffer.ResetWrittenCount();
                json.Reset();
                json.WriteStartObject();
                for (var i = 0; i < outputs.Length; i++)
                {
                    json.WritePropertyName(names[i]);
                    WriteValue(json, reader.GetValue(keys.Length + i));
                }

                json.WriteEndObject();
                json.Flush();

                await importer.StartRowAsync(cancellationToken);
                await importer.WriteAsync(table.Name, NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(key.ToString(), NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(model, NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(checked((int)reader.GetInt64(at)), NpgsqlDbType.Integer, cancellationToken);
                await importer.WriteAsync(reader.GetString(at + 2), NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(Encoding.UTF8.GetString(buffer.WrittenSpan), NpgsqlDbType.Jsonb, cancellationToken);
                await importer.WriteAsync(ParseTime(reader.GetString(at + 1)), NpgsqlDbType.TimestampTz, cancellationToken);
                read++;
            }
        }

        await importer.CompleteAsync(cancellationToken);
        return read;
    }

    /// <summary>A device output value as JSON: numbers stay numbers (a non-finite one, which JSON cannot hold, its text), text stays text.</summary>
    private static void WriteValue(Utf8JsonWriter json, object value)
    {
        switch (value)
        {
            case DBNull:
                json.WriteNullValue();
                break;
            case long l:
                json.WriteNumberValue(l);
                break;
            case double d when double.IsFinite(d):
                json.WriteNumberValue(d);
                break;
            case double d:
                json.WriteStringValue(d.ToString(CultureInfo.InvariantCulture));
                break;
            case string s:
                json.WriteStringValue(s);
                break;
            case byte[] b:
                json.WriteBase64StringValue(b);
                break;
            default:
                json.WriteStringValue(Convert.ToString(value, CultureInfo.InvariantCulture));
                break;
        }
    }

    /// <summary>A time as the embedded store writes it (UTC ISO-8601 text), as a UTC DateTime.</summary>
    public static DateTime ParseTime(string text) =>
        DateTime.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Postgres;
using ModelAsData.Sqlite;

namespace ModelAsData.Sync;

/// <summary>What a push takes: the device id (default: the one the file holds) and how many rows go per call.</summary>
public sealed record PushOptions
{
    public string? Device { get; init; }

    public int BatchRows { get; init; } = 10_000;
}

/// <summary>What a push sent: the rows read from the device file, and how many of them were new centrally.</summary>
public sealed record PushResult(string Device, long RowsRead, long RowsAdded);

public static partial class ModelSync
{
    /// <summary>
    /// Uploads every prediction-table row the device file holds (with its version and arm; rows that failed to score
    /// stay on the device) into mad.edge_predictions, in one central transaction: a push naming a version the central
    /// database does not hold adds nothing, and rows already pushed are skipped. Needs a login in role mad_device.
    /// </summary>
    public static async Task<PushResult> PushAsync(string devicePath, string central, PushOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new PushOptions();
        if (!File.Exists(devicePath))
        {
            throw new ModelAsDataException(ErrorCode.NotFound, $"There is no device file {devicePath}: pull into it first (`mad sync pull --to {devicePath}`).");
        }

        using var syncLock = SyncLock.Take(devicePath);
        await using var device = await OpenDeviceAsync(devicePath, cancellationToken);
        var deviceId = options.Device ?? await device.QuerySingleOrDefaultAsync<string?>("SELECT id FROM mad_device")
            ?? throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"The device file {devicePath} has no device id yet: pass --device (e.g. --device shop-17); it is kept for the next push.");

        await using var dataSource = PostgresDataSource.Create(central, "mad sync push");
        long read = 0, added = 0;
        await RunCentralAsync(dataSource, async () =>
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            // One transaction for the whole push: a refused batch rolls back the ones before it.
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var batch = new JsonArray();
            async Task SendAsync()
            {
                if (batch.Count == 0)
                {
                    return;
                }

                added += await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                    "SELECT mad.ingest_predictions(@deviceId, @rows::jsonb)", new { deviceId, rows = batch.ToJsonString() }, transaction, cancellationToken: cancellationToken));
                batch = [];
            }

            foreach (var row in ReadPredictions(device))
            {
                batch.Add(row);
                read++;
                if (batch.Count >= options.BatchRows)
                {
                    await SendAsync();
                }
            }

            await SendAsync();
            // Even an empty push registers the device and notes its time.
            if (read == 0)
            {
                await connection.ExecuteAsync(new CommandDefinition("SELECT mad.ingest_predictions(@deviceId, '[]'::jsonb)", new { deviceId }, transaction, cancellationToken: cancellationToken));
            }

            await transaction.CommitAsync(cancellationToken);
        });

        await device.ExecuteAsync(SyncSql.DevicePushed, new { id = deviceId, now = SyncTime.Now() });
        return new PushResult(deviceId, read, added);
    }

    private sealed record DeviceTable(string Name, string Model, string KeyColumns, string Columns);

    /// <summary>The device's scored rows as ingest takes them; the key is spelled as mad.key_text spells it.</summary>
    private static IEnumerable<JsonObject> ReadPredictions(Microsoft.Data.Sqlite.SqliteConnection device)
    {
        var tables = device.Query<DeviceTable>("SELECT name AS Name, model AS Model, key_columns AS KeyColumns, columns AS Columns FROM mad_prediction_tables ORDER BY name").ToList();
        foreach (var table in tables)
        {
            var model = ModelReference.Parse(table.Model).Model;
            var keys = JsonSerializer.Deserialize<string[]>(table.KeyColumns)!;
            // The decoded output columns: [{"name": ..., ...}, ...] as the embedded store records them.
            var outputs = JsonNode.Parse(table.Columns)!.AsArray().Select(c => c is JsonValue v ? v.GetValue<string>() : (string)(c!["name"] ?? c["Name"])!).ToArray();
            var output = SqlitePredictionTables.OutputTableOf(table.Name);
            var hasArm = device.ExecuteScalar<long>("SELECT count(*) FROM pragma_table_info(@output) WHERE name = 'arm'", new { output }) > 0;
            var columns = keys.Concat(outputs).Select(SqliteDatabase.Quote)
                .Concat(["model_version", "scored_at", hasArm ? "arm" : "'champion'"]);
            using var command = device.CreateCommand();
            command.CommandText = $"SELECT {string.Join(", ", columns)} FROM {SqliteDatabase.Quote(output)} WHERE error IS NULL";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var key = string.Join('\u001F', Enumerable.Range(0, keys.Length).Select(i => Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture)));
                var values = new JsonObject();
                for (var i = 0; i < outputs.Length; i++)
                {
                    values[outputs[i]] = reader.GetValue(keys.Length + i) switch
                    {
                        DBNull => null,
                        long l => JsonValue.Create(l),
                        double d => JsonValue.Create(d),
                        string s => JsonValue.Create(s),
                        var other => JsonValue.Create(Convert.ToString(other, CultureInfo.InvariantCulture)),
                    };
                }

                var at = keys.Length + outputs.Length;
                yield return new JsonObject
                {
                    ["prediction_table"] = table.Name,
                    ["key"] = key,
                    ["model"] = model,
                    ["version"] = reader.GetInt64(at),
                    ["arm"] = reader.GetString(at + 2),
                    ["outputs"] = values,
                    ["scored_at"] = reader.GetString(at + 1),
                };
            }
        }
    }
}

using System.Diagnostics;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Sqlite;
using ModelAsData.Sync;
using Npgsql;
using NpgsqlTypes;
using Spectre.Console;

namespace ModelAsData.Bench;

/// <summary>
/// <c>mad bench --section sync</c> (docs/BENCHMARKS.md): <c>mad sync push</c> of a device file's prediction rows into
/// mad.edge_predictions, against a bare binary COPY of the same rows (read from the same file) into a table of the
/// same shape and primary key. Goal: push ≥ 0.5× the COPY's rate.
/// </summary>
internal sealed class SyncBench(string db, int rows, int rounds, IAnsiConsole console)
{
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await using var dataSource = Postgres.PostgresDataSource.Create(db, "mad bench sync");
        var model = "bench_edge_" + Guid.NewGuid().ToString("N")[..8];
        // Any bytes make a version the push may name (ingest checks that the version exists).
        await dataSource.OpenConnection().ExecuteAsync("SELECT mad.push_model(@model, '\\x01'::bytea)", new { model });
        var path = Path.Combine(Path.GetTempPath(), $"mad-bench-device-{Guid.NewGuid():N}.db");
        try
        {
            await MakeDeviceAsync(path, model, cancellationToken);
            var push = new List<double>();
            var copy = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                var device = $"bench-{Guid.NewGuid():N}"[..20];
                var watch = Stopwatch.StartNew();
                var result = await ModelSync.PushAsync(path, db, new PushOptions { Device = device }, cancellationToken);
                push.Add(rows / watch.Elapsed.TotalSeconds);
                if (result.RowsAdded != rows)
                {
                    throw new InvalidOperationException($"The push added {result.RowsAdded} rows, not {rows}.");
                }

                watch.Restart();
                await BareCopyAsync(dataSource, path, model, cancellationToken);
                copy.Add(rows / watch.Elapsed.TotalSeconds);
                console.MarkupLineInterpolated($"[grey]round {round + 1}: push {push[^1]:N0} rows/s, bare COPY {copy[^1]:N0} rows/s[/]");
                // VACUUM: the next round's push must not wade through this one's dead index entries.
                await dataSource.OpenConnection().ExecuteAsync("DELETE FROM mad.edge_predictions WHERE device = @device; DELETE FROM mad.devices WHERE id = @device", new { device });
                await dataSource.OpenConnection().ExecuteAsync("VACUUM mad.edge_predictions");
            }

            var p = Median(push);
            var c = Median(copy);
            console.MarkupLineInterpolated($"push {p:N0} rows/s, bare COPY {c:N0} rows/s: push = {p / c:0.00}× COPY ({rows:N0} rows, median of {rounds}).");
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var file in new[] { path, path + "-wal", path + "-shm", path + ".sync-lock" })
            {
                File.Delete(file);
            }
        }
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    /// <summary>A device file with one prediction table of <c>rows</c> scored rows (written directly, as a refresh leaves them).</summary>
    private async Task MakeDeviceAsync(string path, string model, CancellationToken cancellationToken)
    {
        await using var registry = await SqliteModelRegistry.OpenAsync(path, cancellationToken);
        await registry.Connection.ExecuteAsync($"""
            INSERT INTO mad_prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns, created_by, created_at)
            VALUES ('edge', 'flowers', '["id"]', '["INTEGER"]', '{model}', '{"{}"}', '[]', '[{"{"}"name": "label"{"}"}, {"{"}"name": "probability"{"}"}]', 'bench', '2026-12-04T00:00:00.000000Z');
            CREATE TABLE mad_out_edge (id INTEGER PRIMARY KEY, label INTEGER, probability REAL, model_version INTEGER NOT NULL, scored_at TEXT NOT NULL, error TEXT, arm TEXT NOT NULL);
            WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {rows})
            INSERT INTO mad_out_edge SELECT i, i % 3, (i % 1000) / 1000.0, 1, '2026-12-04T00:00:00.000000Z', NULL, CASE WHEN i % 10 = 0 THEN 'canary' ELSE 'champion' END FROM g;
            """);
    }

    /// <summary>The reference: read the same rows and binary-COPY them into a temporary table shaped as mad.edge_predictions.</summary>
    private async Task BareCopyAsync(NpgsqlDataSource dataSource, string path, string model, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await connection.ExecuteAsync("CREATE TEMP TABLE bench_copy (LIKE mad.edge_predictions INCLUDING DEFAULTS INCLUDING INDEXES)");
        await using var device = await SqliteDatabase.OpenAsync(path, cancellationToken);
        using var command = device.CreateCommand();
        command.CommandText = "SELECT id, label, probability, model_version, scored_at, arm FROM mad_out_edge WHERE error IS NULL";
        using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await using (var importer = await connection.BeginBinaryImportAsync(
            "COPY bench_copy (device, prediction_table, key, model, version, arm, outputs, scored_at) FROM STDIN (FORMAT BINARY)", cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                await importer.StartRowAsync(cancellationToken);
                await importer.WriteAsync("bench-copy", NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync("edge", NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(reader.GetInt64(0).ToString(System.Globalization.CultureInfo.InvariantCulture), NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(model, NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync((int)reader.GetInt64(3), NpgsqlDbType.Integer, cancellationToken);
                await importer.WriteAsync(reader.GetString(5), NpgsqlDbType.Text, cancellationToken);
                await importer.WriteAsync(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{{\"label\": {reader.GetInt64(1)}, \"probability\": {reader.GetDouble(2)}}}"), NpgsqlDbType.Jsonb, cancellationToken);
                await importer.WriteAsync(DateTime.Parse(reader.GetString(4), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AdjustToUniversal), NpgsqlDbType.TimestampTz, cancellationToken);
            }

            await importer.CompleteAsync(cancellationToken);
        }

        await connection.ExecuteAsync("DROP TABLE bench_copy");
    }
}

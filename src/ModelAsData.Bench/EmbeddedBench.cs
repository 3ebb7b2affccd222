using System.Diagnostics;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;

namespace ModelAsData.Bench;

/// <summary>
/// The embedded store's benchmarks, each beside its reference measured in the same round on the same model and rows:
/// <c>predict()</c> through SQLite against raw single-row ONNX Runtime calls, and <c>tables refresh</c> against raw
/// batch scoring and against the bare read-and-write of the same rows without scoring.
/// </summary>
internal sealed class EmbeddedBench(int rows, int rounds, Action<string> log)
{
    public const string Model = "skl2onnx_rf_iris.onnx";

    private const string PredictQuery = "SELECT sum(predict('iris', sepal_length, sepal_width, petal_length, petal_width)) FROM bench_flowers";

    public async Task<IReadOnlyList<Measurement>> RunAsync(CancellationToken cancellationToken)
    {
        var folder = Directory.CreateTempSubdirectory("mad-bench-");
        try
        {
            return await RunInAsync(Path.Combine(folder.FullName, "bench.db"), cancellationToken);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            folder.Delete(recursive: true);
        }
    }

    private async Task<IReadOnlyList<Measurement>> RunInAsync(string path, CancellationToken cancellationToken)
    {
        var bytes = await File.ReadAllBytesAsync(ShippedModels.Path(Model), cancellationToken);
        await using var registry = await SqliteModelRegistry.OpenAsync(path, cancellationToken);
        var connection = registry.Connection;
        var features = new JsonObject { ["float_input"] = new JsonArray("sepal_length", "sepal_width", "petal_length", "petal_width") };
        var version = await registry.PushAsync("iris", bytes, new JsonObject { ["features"] = features }, cancellationToken);
        await registry.SetAliasAsync("iris", "production", version.Version, cancellationToken: cancellationToken);
        SqlitePredictFunctions.Register(connection);
        var data = BenchRows.Iris(rows, seed: 42);
        Load(connection, data);
        var tables = new SqlitePredictionTables(registry);
        await tables.CreateAsync(new PredictionTableSpec("bench_scores", "bench_flowers", ["id"], "iris", null), cancellationToken);
        connection.Execute("CREATE TABLE bare_out (id INTEGER PRIMARY KEY, label INTEGER, probability_0 REAL, probability_1 REAL, probability_2 REAL, model_version INTEGER NOT NULL, scored_at TEXT NOT NULL, error TEXT)");

        using var raw = new RawOnnxRuntime(ZipMapRemover.Rewrite(bytes).Bytes);
        var batch = ModelCache.Shared.GetOrLoad(version.Sha256, () => bytes).PreferredBatchSize;
        var results = new Dictionary<string, List<double>>();
        for (var round = 1; round <= rounds; round++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            log($"round {round}/{rounds}");
            await TimeAsync(results, "raw ONNX Runtime, 1 row per call", () => raw.Score(data, 1));
            await TimeAsync(results, "predict() in SQLite, 1 row per call", () => connection.ExecuteScalar<long>(PredictQuery));
            await TimeAsync(results, $"raw ONNX Runtime, {batch} rows per call", () => raw.Score(data, batch));
            await TimeAsync(results, "bare read + write, no scoring", () => BareReadWrite(connection));
            await TimeAsync(results, "tables refresh", () => tables.RefreshAsync("bench_scores", cancellationToken: cancellationToken));
        }

        return results.Select(r => new Measurement(r.Key, r.Value)).ToList();
    }

    private Task TimeAsync(Dictionary<string, List<double>> results, string name, Action action) =>
        TimeAsync(results, name, () =>
        {
            action();
            return Task.CompletedTask;
        });

    private async Task TimeAsync(Dictionary<string, List<double>> results, string name, Func<Task> action)
    {
        var started = Stopwatch.GetTimestamp();
        await action();
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        (results.TryGetValue(name, out var list) ? list : results[name] = []).Add(rows / seconds);
    }

    private static void Load(SqliteConnection connection, float[][] data)
    {
        connection.Execute("CREATE TABLE bench_flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL)");
        using var transaction = connection.BeginTransaction();
        using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = "INSERT INTO bench_flowers VALUES ($id, $a, $b, $c, $d)";
        var parameters = new[] { "$id", "$a", "$b", "$c", "$d" }.Select(p => insert.Parameters.Add(new SqliteParameter(p, null))).ToArray();
        for (var i = 0; i < data.Length; i++)
        {
            parameters[0].Value = i + 1;
            for (var f = 0; f < 4; f++)
            {
                parameters[f + 1].Value = (double)data[i][f];
            }

            insert.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <summary>
    /// What a refresh does without the model: read the same rows, write rows as wide into a keyed table through the
    /// same raw prepared statements, in one transaction.
    /// </summary>
    private static void BareReadWrite(SqliteConnection connection)
    {
        using var transaction = connection.BeginTransaction();
        connection.Execute("DELETE FROM bare_out", transaction: transaction);
        using var reader = new SqliteRawStatement(connection, "SELECT id, sepal_length, sepal_width, petal_length, petal_width FROM bench_flowers");
        using var insert = new SqliteRawStatement(connection, "INSERT INTO bare_out VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
        insert.Bind(6, 1L);
        insert.Bind(7, DateTime.UtcNow.ToString("O"));
        insert.Bind(8, (object?)null);
        while (reader.Read())
        {
            insert.Bind(1, reader.GetInt64(0));
            insert.Bind(2, (long)reader.GetDouble(1));
            insert.Bind(3, reader.GetDouble(2));
            insert.Bind(4, reader.GetDouble(3));
            insert.Bind(5, reader.GetDouble(4));
            insert.Execute();
        }

        transaction.Commit();
    }
}

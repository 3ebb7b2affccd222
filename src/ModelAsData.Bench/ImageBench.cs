using System.Diagnostics;
using Dapper;
using Microsoft.Data.Sqlite;
using Microsoft.ML.OnnxRuntime;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;

namespace ModelAsData.Bench;

/// <summary>
/// Issue 14's image figure on the embedded store: a small CNN over uint8 images (<c>image [N,1,28,28]</c>) scored by
/// <c>tables refresh</c> from a BLOB column, against raw ONNX Runtime batch scoring of the same bytes in the same
/// round, twice: as a classifier (<c>logits [N,10]</c>, ten real columns) and with its feature map too (a per-row
/// tensor <c>features [N,4,7,7]</c>, which SQLite stores as nested JSON text: 196 numbers formatted per row).
/// </summary>
internal sealed class ImageBench(int images, int rounds, Action<string> log)
{
    /// <summary>The two shapes of output: the figure's name and the shipped model (models/MANIFEST.md).</summary>
    public static readonly (string Outputs, string Model)[] Models =
    [
        ("logits", "cnn_uint8_logits.onnx"),
        ("logits + feature map", "cnn_uint8.onnx"),
    ];

    private const int Pixels = 28 * 28;

    public static string Raw(string outputs) => $"raw ONNX Runtime: {outputs}";

    public static string Refresh(string outputs) => $"tables refresh: {outputs}";

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
        await using var registry = await SqliteModelRegistry.OpenAsync(path, cancellationToken);
        var pixels = RandomImages(images, seed: 14);
        Load(registry.Connection, pixels);
        var tables = new SqlitePredictionTables(registry);
        var cases = new List<(string Outputs, string Table, RawImageScorer Raw, int Batch)>();
        try
        {
            foreach (var (outputs, file) in Models)
            {
                var bytes = await File.ReadAllBytesAsync(ShippedModels.Path(file), cancellationToken);
                var name = Path.GetFileNameWithoutExtension(file);
                var version = await registry.PushAsync(name, bytes, [], cancellationToken);
                await tables.CreateAsync(new PredictionTableSpec($"{name}_scores", "bench_images", ["id"], name, null), cancellationToken);
                var batch = ModelCache.Shared.GetOrLoad(version.Sha256, () => bytes).PreferredBatchSize;
                cases.Add((outputs, $"{name}_scores", new RawImageScorer(bytes), batch));
            }

            var results = new Dictionary<string, List<double>>();
            for (var round = 1; round <= rounds; round++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                log($"round {round}/{rounds}");
                foreach (var (outputs, table, raw, batch) in cases)
                {
                    // Alternate the order so neither side always runs on a warmer cache.
                    var pair = new (string Name, Func<Task> Run)[]
                    {
                        (Raw(outputs), () => Task.FromResult(raw.Score(pixels, batch))),
                        (Refresh(outputs), () => tables.RefreshAsync(table, cancellationToken: cancellationToken)),
                    };
                    foreach (var (name, run) in round % 2 == 1 ? pair : pair.Reverse())
                    {
                        await TimeAsync(results, name, run);
                    }
                }
            }

            foreach (var (_, table, _, _) in cases)
            {
                var errors = registry.Connection.ExecuteScalar<long>($"SELECT count(*) FROM mad_out_{table} WHERE error IS NOT NULL");
                if (errors > 0)
                {
                    throw new InvalidOperationException($"The image refresh of {table} wrote {errors} row error(s): the figure would not measure scoring.");
                }
            }

            return results.Select(r => new Measurement(r.Key, r.Value)).ToList();
        }
        finally
        {
            cases.ForEach(c => c.Raw.Dispose());
        }
    }

    private async Task TimeAsync(Dictionary<string, List<double>> results, string name, Func<Task> action)
    {
        var started = Stopwatch.GetTimestamp();
        await action();
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        (results.TryGetValue(name, out var list) ? list : results[name] = []).Add(images / seconds);
    }

    /// <summary>All images in one array, <see cref="Pixels"/> bytes each, from a fixed seed.</summary>
    private static byte[] RandomImages(int count, int seed)
    {
        var pixels = new byte[count * Pixels];
        new Random(seed).NextBytes(pixels);
        return pixels;
    }

    private static void Load(SqliteConnection connection, byte[] pixels)
    {
        connection.Execute("CREATE TABLE bench_images (id INTEGER PRIMARY KEY, image BLOB NOT NULL)");
        using var transaction = connection.BeginTransaction();
        using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = "INSERT INTO bench_images VALUES ($id, $image)";
        var id = insert.Parameters.Add(new SqliteParameter("$id", null));
        var image = insert.Parameters.Add(new SqliteParameter("$image", null));
        for (var i = 0; i < pixels.Length / Pixels; i++)
        {
            id.Value = i + 1;
            image.Value = pixels.AsSpan(i * Pixels, Pixels).ToArray();
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <summary>
    /// The reference a user would write by hand: every output into a preallocated buffer, the images copied straight
    /// from one byte array into the input tensor, a checksum read so the work cannot be skipped.
    /// </summary>
    private sealed class RawImageScorer : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly string[] _outputNames;
        private readonly int[] _outputWidths;

        public RawImageScorer(byte[] model)
        {
            _session = RawOnnxRuntime.OpenSession(model);
            _outputNames = [.. _session.OutputNames];
            _outputWidths = [.. _outputNames.Select(n => _session.OutputMetadata[n].Dimensions.Skip(1).Aggregate(1, (a, d) => a * d))];
        }

        public double Score(byte[] pixels, int batch)
        {
            var count = pixels.Length / Pixels;
            var input = new byte[batch * Pixels];
            var outputs = _outputWidths.Select(w => new float[batch * w]).ToArray();
            using var runOptions = new RunOptions();
            double checksum = 0;
            for (var start = 0; start < count; start += batch)
            {
                var n = Math.Min(batch, count - start);
                pixels.AsSpan(start * Pixels, n * Pixels).CopyTo(input);
                using var inputValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, input.AsMemory(0, n * Pixels), [n, 1, 28, 28]);
                var outputValues = _outputNames.Select((name, o) => OrtValue.CreateTensorValueFromMemory(
                    OrtMemoryInfo.DefaultInstance, outputs[o].AsMemory(0, n * _outputWidths[o]), [n, .. _session.OutputMetadata[name].Dimensions.Skip(1).Select(d => (long)d)])).ToArray();
                try
                {
                    _session.Run(runOptions, ["image"], [inputValue], _outputNames, outputValues);
                }
                finally
                {
                    Array.ForEach(outputValues, v => v.Dispose());
                }

                for (var r = 0; r < n; r++)
                {
                    checksum += outputs[0][r * _outputWidths[0]];
                }
            }

            return checksum;
        }

        public void Dispose() => _session.Dispose();
    }
}

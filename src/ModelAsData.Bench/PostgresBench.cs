using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Extensions.Hosting;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Postgres.Registry;
using ModelAsData.Sidecar;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Bench;

/// <summary>
/// The PostgreSQL benchmark: a full refresh by one in-process sidecar, beside references measured in the same round on
/// the same rows: raw ONNX Runtime batch scoring (no database), the bare data movement (binary COPY of the rows out
/// and of as many output-width rows into a fresh table, no scoring), and the model-as-a-service path a user would
/// otherwise build (read rows, POST them in batches to a JSON endpoint that scores with ONNX Runtime, INSERT results).
/// Works in tables of its own (<c>mad_bench_*</c>) and drops them afterwards.
/// </summary>
/// <param name="monitoring">Instead: the refresh with drift monitoring off (the version has no baseline) against on
/// (a baseline of the source, so every row is counted), in alternating pairs (issue 16's "nearly free").</param>
internal sealed class PostgresBench(string connectionString, int rows, int rounds, Action<string> log, bool monitoring = false)
{
    public const string MonitoringOff = "sidecar refresh, monitoring off";
    public const string MonitoringOn = "sidecar refresh, monitoring on (every row counted)";

    public const string Refresh = "sidecar refresh, 1 sidecar";
    public const string CanaryRefresh = "sidecar refresh under a 50 % canary, 1 sidecar";
    public const string ShadowRefresh = "sidecar refresh under a 50 % canary + a 100 % shadow, 1 sidecar";
    public const string Bare = "bare data movement: COPY out + COPY in, no scoring";
    public const string Service = "model as a service: read, POST JSON batches, INSERT";
    public const string RawPrefix = "raw ONNX Runtime, ";

    private const int ServiceBatch = 1_000;

    public async Task<IReadOnlyList<Measurement>> RunAsync(CancellationToken cancellationToken)
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var source = $"mad_bench_flowers_{suffix}";
        var table = $"mad_bench_scores_{suffix}";
        await using var registry = await PostgresModelRegistry.OpenAsync(connectionString, cancellationToken);
        await registry.MigrateAsync(cancellationToken);
        var dataSource = registry.DataSource;
        try
        {
            return await RunInAsync(registry, source, table, cancellationToken);
        }
        finally
        {
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            await connection.ExecuteAsync($"""
                DELETE FROM mad.prediction_tables WHERE name = '{table}';
                DELETE FROM mad.profile_counts WHERE prediction_table = '{table}';
                DELETE FROM mad.baselines WHERE model = 'bench_iris_{suffix}';
                DROP TABLE IF EXISTS public.mad_bench_baseline_{suffix};
                DROP TABLE IF EXISTS mad_out.{table}, public.{source}, public.mad_bench_bare_{suffix}, public.mad_bench_service_{suffix};
                """);
        }
    }

    private async Task<IReadOnlyList<Measurement>> RunInAsync(PostgresModelRegistry registry, string source, string table, CancellationToken cancellationToken)
    {
        var dataSource = registry.DataSource;
        var suffix = source[^8..];
        log($"loading {rows:N0} rows into public.{source}");
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            await connection.ExecuteAsync(new CommandDefinition($"""
                SELECT setseed(0.42);
                CREATE TABLE public.{source} (id bigint PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real);
                INSERT INTO public.{source}
                SELECT g, 4.3 + random() * 3.6, 2.0 + random() * 2.4, 1.0 + random() * 5.9, 0.1 + random() * 2.4 FROM generate_series(1, {rows}) g;
                CREATE TABLE public.mad_bench_bare_{suffix} (id bigint, label bigint, probability_0 real, probability_1 real, probability_2 real,
                                                             model_version int NOT NULL, scored_at timestamptz NOT NULL, error text);
                CREATE TABLE public.mad_bench_service_{suffix} (id bigint PRIMARY KEY, label bigint, probability_0 real, probability_1 real, probability_2 real,
                                                                model_version int NOT NULL, scored_at timestamptz NOT NULL, error text);
                """, commandTimeout: 0, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition($"VACUUM ANALYZE public.{source}", commandTimeout: 0, cancellationToken: cancellationToken));
        }

        var bytes = await File.ReadAllBytesAsync(ShippedModels.Path(EmbeddedBench.Model), cancellationToken);
        var model = $"bench_iris_{suffix}";
        var features = new JsonObject { ["float_input"] = new JsonArray("sepal_length", "sepal_width", "petal_length", "petal_width") };
        var options = new SidecarOptions { SidecarId = $"bench-{suffix}", PollInterval = TimeSpan.FromSeconds(5) };
        using var host = SidecarHost.Build(connectionString, options);
        await host.StartAsync(cancellationToken);
        try
        {
            var pushed = await registry.PushAsync(model, bytes, new JsonObject { ["features"] = features }, cancellationToken);
            await registry.WaitForValidationAsync(model, pushed.Version, TimeSpan.FromSeconds(60), cancellationToken);
            // Version 2 (the same bytes) is the canary: the figure is what routing by key costs, not another model's speed.
            var second = await registry.PushAsync(model, bytes, new JsonObject { ["features"] = features.DeepClone() }, cancellationToken);
            await registry.WaitForValidationAsync(model, second.Version, TimeSpan.FromSeconds(60), cancellationToken);
            await registry.SetAliasAsync(model, "production", pushed.Version, "bench", cancellationToken);
            var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(10));
            await tables.CreateAsync(new PredictionTableSpec(table, source, ["id"], model, null), cancellationToken);

            var data = await ReadRowsAsync(dataSource, source, cancellationToken);
            using var loaded = OnnxModel.Load(bytes);
            using var raw = new RawOnnxRuntime(ZipMapRemover.Rewrite(bytes).Bytes);
            var batch = loaded.PreferredBatchSize;
            await using var service = await ScoringService.StartAsync(loaded, cancellationToken);

            // The sidecar is a long-running process: load the model and JIT the pipeline once before timing, as in service.
            log("warm-up refresh (not timed)");
            await tables.WaitForJobAsync(await tables.StartRefreshAsync(table, cancellationToken), cancellationToken: cancellationToken);
            var results = new Dictionary<string, List<double>>();
            if (monitoring)
            {
                await MonitoringPairsAsync(registry, model, source, table, tables, results, cancellationToken);
                return results.Select(r => new Measurement(r.Key, r.Value)).ToList();
            }

            for (var round = 1; round <= rounds; round++)
            {
                log($"round {round}/{rounds}");
                await TimeAsync(results, Refresh, async () =>
                {
                    var id = await tables.StartRefreshAsync(table, cancellationToken);
                    var job = await tables.WaitForJobAsync(id, cancellationToken: cancellationToken);
                    return job.RowsDone;
                });
                await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
                {
                    await connection.ExecuteAsync(new CommandDefinition("SELECT mad.deploy_canary(@model, 'production', 2, percent => 50)", new { model }, cancellationToken: cancellationToken));
                }

                await TimeAsync(results, CanaryRefresh, async () =>
                {
                    var id = await tables.StartRefreshAsync(table, cancellationToken);
                    var job = await tables.WaitForJobAsync(id, cancellationToken: cancellationToken);
                    return job.RowsDone;
                });
                // Issue 15: the same canary with a shadow scoring every key (version 2 again: the figure is what
                // the second scoring and its table cost, not another model's speed).
                await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
                {
                    await connection.ExecuteAsync(new CommandDefinition("SELECT mad.deploy_shadow(@model, 'production', 2, 100)", new { model }, cancellationToken: cancellationToken));
                }

                await TimeAsync(results, ShadowRefresh, async () =>
                {
                    var id = await tables.StartRefreshAsync(table, cancellationToken);
                    var job = await tables.WaitForJobAsync(id, cancellationToken: cancellationToken);
                    return job.RowsDone;
                });
                await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
                {
                    await connection.ExecuteAsync(new CommandDefinition("SELECT mad.abort_deployment(@model, 'production')", new { model }, cancellationToken: cancellationToken));
                }

                await TimeAsync(results, $"{RawPrefix}{batch} rows per call", () =>
                {
                    raw.Score(data, batch);
                    return Task.FromResult((long)data.Length);
                });
                await TimeAsync(results, Bare, () => BareMovementAsync(dataSource, source, $"public.mad_bench_bare_{suffix}", cancellationToken));
                await TimeAsync(results, Service, () => ServicePathAsync(dataSource, service, source, $"public.mad_bench_service_{suffix}", cancellationToken));
            }

            return results.Select(r => new Measurement(r.Key, r.Value)).ToList();
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// Takes a baseline of the source (inputs and outputs), then times refreshes with counting off (mad.settings
    /// drift_counting = 0, 026_4: since 021 a version without a baseline is counted into its first window, so removing
    /// the baseline no longer turns counting off) and on, alternating which goes first, so the two see the same load.
    /// </summary>
    private async Task MonitoringPairsAsync(PostgresModelRegistry registry, string model, string source, string table, PostgresPredictionTables tables,
        Dictionary<string, List<double>> results, CancellationToken cancellationToken)
    {
        log("taking the baseline (not timed)");
        await new Postgres.Monitoring.PostgresMonitoring(registry, ModelCache.Shared).SetBaselineAsync(model, 1, "public." + source, null, cancellationToken);
        await using var connection = await registry.DataSource.OpenConnectionAsync(cancellationToken);
        async Task<long> RefreshAsync(bool on)
        {
            await connection.ExecuteAsync("UPDATE mad.settings SET value = @value WHERE name = 'drift_counting'", new { value = on ? "1" : "0" });
            var id = await tables.StartRefreshAsync(table, cancellationToken);
            return (await tables.WaitForJobAsync(id, cancellationToken: cancellationToken)).RowsDone;
        }

        for (var round = 1; round <= rounds; round++)
        {
            log($"round {round}/{rounds}");
            foreach (var on in round % 2 == 1 ? new[] { false, true } : [true, false])
            {
                await TimeAsync(results, on ? MonitoringOn : MonitoringOff, () => RefreshAsync(on));
            }
        }
    }

    private async Task TimeAsync(Dictionary<string, List<double>> results, string name, Func<Task<long>> action)
    {
        var started = Stopwatch.GetTimestamp();
        var done = await action();
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        if (done != rows)
        {
            throw new InvalidOperationException($"{name} handled {done:N0} rows, not {rows:N0}.");
        }

        (results.TryGetValue(name, out var list) ? list : results[name] = []).Add(rows / seconds);
        log(string.Create(CultureInfo.InvariantCulture, $"  {name}: {rows / seconds:N0} rows/s"));
    }

    private static async Task<float[][]> ReadRowsAsync(NpgsqlDataSource dataSource, string source, CancellationToken cancellationToken)
    {
        var list = new List<float[]>();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var exporter = await connection.BeginBinaryExportAsync(
            $"COPY (SELECT sepal_length, sepal_width, petal_length, petal_width FROM public.{source} ORDER BY id) TO STDOUT (FORMAT BINARY)", cancellationToken);
        while (await exporter.StartRowAsync(cancellationToken) != -1)
        {
            list.Add([exporter.Read<float>(), exporter.Read<float>(), exporter.Read<float>(), exporter.Read<float>()]);
        }

        return [.. list];
    }

    /// <summary>
    /// What a refresh moves without the model: every row out by binary COPY and as many rows of the output's width in
    /// by binary COPY, into a fresh (truncated) table, in one transaction; reading and writing interleaved on one thread.
    /// </summary>
    private static async Task<long> BareMovementAsync(NpgsqlDataSource dataSource, string source, string target, CancellationToken cancellationToken)
    {
        await using var reader = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var writer = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await writer.BeginTransactionAsync(cancellationToken);
        await writer.ExecuteAsync(new CommandDefinition($"TRUNCATE {target}", transaction: transaction, cancellationToken: cancellationToken));
        long count = 0;
        var now = DateTime.UtcNow;
        using (var exporter = await reader.BeginBinaryExportAsync($"COPY (SELECT id, sepal_length, sepal_width, petal_length, petal_width FROM public.{source}) TO STDOUT (FORMAT BINARY)", cancellationToken))
        using (var importer = await writer.BeginBinaryImportAsync($"COPY {target} FROM STDIN (FORMAT BINARY)", cancellationToken))
        {
            while (exporter.StartRow() != -1)
            {
                var id = exporter.Read<long>(NpgsqlDbType.Bigint);
                var a = exporter.Read<float>(NpgsqlDbType.Real);
                var b = exporter.Read<float>(NpgsqlDbType.Real);
                var c = exporter.Read<float>(NpgsqlDbType.Real);
                var d = exporter.Read<float>(NpgsqlDbType.Real);
                importer.StartRow();
                importer.Write(id, NpgsqlDbType.Bigint);
                importer.Write((long)a, NpgsqlDbType.Bigint);
                importer.Write(b, NpgsqlDbType.Real);
                importer.Write(c, NpgsqlDbType.Real);
                importer.Write(d, NpgsqlDbType.Real);
                importer.Write(1, NpgsqlDbType.Integer);
                importer.Write(now, NpgsqlDbType.TimestampTz);
                importer.WriteNull();
                count++;
            }

            await importer.CompleteAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return count;
    }

    /// <summary>
    /// The path a user would build without the sidecar: read rows, POST them in batches of <see cref="ServiceBatch"/>
    /// as JSON to the inference endpoint, and INSERT each batch's results in one statement (unnest of arrays).
    /// </summary>
    private static async Task<long> ServicePathAsync(NpgsqlDataSource dataSource, ScoringService service, string source, string target, CancellationToken cancellationToken)
    {
        await using var reader = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var writer = await dataSource.OpenConnectionAsync(cancellationToken);
        await writer.ExecuteAsync(new CommandDefinition($"TRUNCATE {target}", cancellationToken: cancellationToken));
        var insert = $"""
            INSERT INTO {target} (id, label, probability_0, probability_1, probability_2, model_version, scored_at)
            SELECT u.id, u.label, u.p0, u.p1, u.p2, 1, now() FROM unnest(@ids, @labels, @p0, @p1, @p2) AS u(id, label, p0, p1, p2)
            """;
        await using var read = new NpgsqlCommand($"SELECT id, sepal_length, sepal_width, petal_length, petal_width FROM public.{source}", reader);
        await using var rowsRead = await read.ExecuteReaderAsync(cancellationToken);
        var ids = new List<long>(ServiceBatch);
        var features = new List<float[]>(ServiceBatch);
        long count = 0;
        while (true)
        {
            var more = await rowsRead.ReadAsync(cancellationToken);
            if (more)
            {
                ids.Add(rowsRead.GetInt64(0));
                features.Add([rowsRead.GetFloat(1), rowsRead.GetFloat(2), rowsRead.GetFloat(3), rowsRead.GetFloat(4)]);
            }

            if (ids.Count == ServiceBatch || (!more && ids.Count > 0))
            {
                var scored = await service.ScoreAsync(features, cancellationToken);
                await writer.ExecuteAsync(new CommandDefinition(insert, new
                {
                    ids = ids.ToArray(),
                    labels = scored.Labels,
                    p0 = scored.Probabilities.Select(p => p[0]).ToArray(),
                    p1 = scored.Probabilities.Select(p => p[1]).ToArray(),
                    p2 = scored.Probabilities.Select(p => p[2]).ToArray(),
                }, cancellationToken: cancellationToken));
                count += ids.Count;
                ids.Clear();
                features.Clear();
            }

            if (!more)
            {
                return count;
            }
        }
    }
}

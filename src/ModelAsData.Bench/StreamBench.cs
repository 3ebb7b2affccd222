using System.Text.Json.Nodes;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Registry;
using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// <c>mad bench --db "Host=…" --section stream</c>: streaming on PostgreSQL in one run, against a sidecar
/// (<c>mad serve</c>) started as its own process: commit → prediction visible at 1,000 rows/s
/// (<see cref="StreamLatencyPhase"/>), the highest rate with bounded lag (<see cref="StreamRampPhase"/>), and the
/// writers' throughput with and without the watch triggers (<see cref="StreamWritersPhase"/>). Works in
/// <c>public.bench_stream_*</c> and prediction table <c>bench_stream</c>: removes them before (so a failed run does
/// not stop the next) and after.
/// </summary>
internal sealed class StreamBench(string db, int rounds, Action<string> log)
{
    public const string Model = "bench_stream_iris";

    /// <summary>How long each timed stretch (latency round, ramp step, writer burst) lasts.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan s_firstPredictionTimeout = TimeSpan.FromSeconds(60);

    public async Task<StreamResults> RunAsync(CancellationToken cancellationToken)
    {
        var loadBefore = LoadAverage();
        var bytes = await File.ReadAllBytesAsync(Path.Combine(AppContext.BaseDirectory, "models", "skl2onnx_rf_iris.onnx"), cancellationToken);
        await using (var registry = await PostgresModelRegistry.OpenAsync(db, cancellationToken))
        {
            await registry.MigrateAsync(cancellationToken); // a fresh database has no mad schema for the cleanup to read
        }

        await using var dataSource = PostgresDataSource.Create(db, "mad bench stream");
        await ExecuteAsync(dataSource, StreamBenchSql.Cleanup, cancellationToken);
        try
        {
            await using var sidecar = SidecarProcess.Start(db, $"bench-stream:{Environment.ProcessId}");
            var table = await SetUpAsync(dataSource, sidecar, bytes, cancellationToken);
            var latency = await new StreamLatencyPhase(table, rounds, Period, log).RunAsync(cancellationToken);
            var ramp = await new StreamRampPhase(table, Period, log).RunAsync(cancellationToken);
            var (unwatched, watched, triggersOnly) = await new StreamWritersPhase(table, rounds, Period, log).RunAsync(cancellationToken);
            await table.ThrowIfFailedAsync(cancellationToken);
            var load = $"{loadBefore}–{LoadAverage()}";
            return new StreamResults(await ServerVersionAsync(dataSource, cancellationToken), load, rounds, Period, latency, ramp, unwatched, watched, triggersOnly);
        }
        finally
        {
            // After the sidecar is gone, so no batch holds the outbox while unwatch empties it.
            await ExecuteAsync(dataSource, StreamBenchSql.Cleanup, CancellationToken.None);
        }
    }

    /// <summary>The model, the source, the watched prediction table, and one batch through it end to end.</summary>
    private async Task<StreamBenchTable> SetUpAsync(NpgsqlDataSource dataSource, SidecarProcess sidecar, byte[] bytes, CancellationToken cancellationToken)
    {
        log($"pushing {Model}, creating {StreamBenchSql.Source} and prediction table {StreamBenchSql.Table}, watching it");
        int version;
        await using (var registry = await PostgresModelRegistry.OpenAsync(db, cancellationToken))
        {
            version = (await registry.PushAsync(Model, bytes, new JsonObject(), cancellationToken)).Version;
            await registry.WaitForValidationAsync(Model, version, TimeSpan.FromSeconds(60), cancellationToken);
        }

        await ExecuteAsync(dataSource, StreamBenchSql.CreateSource, cancellationToken);
        await using (var create = dataSource.CreateCommand(StreamBenchSql.CreatePredictionTable))
        {
            // This run's version by number: an alias moved by someone else must not change what is timed.
            create.Parameters.Add(new() { Value = $"{Model}@{version}" });
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        var table = new StreamBenchTable(dataSource, sidecar);
        await table.WatchAsync(cancellationToken);
        await sidecar.WaitForWorkerAsync(dataSource, TimeSpan.FromSeconds(30), cancellationToken);

        log("first batch through the stream (the sidecar loads the model)");
        await using var writer = await StreamWriter.OpenAsync(dataSource, cancellationToken);
        var first = table.ReserveIds(1_000);
        for (var i = 0; i < 10; i++)
        {
            await writer.InsertManyAsync(first + (i * 100), 100, cancellationToken);
        }

        await table.WaitForCountAsync(StreamBenchSql.Predicted, first, first + 999, 1_000, "the first batch", s_firstPredictionTimeout, cancellationToken);
        await table.ThrowIfFailedAsync(cancellationToken);
        return table;
    }

    private static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql, CancellationToken cancellationToken)
    {
        // The cleanup's unwatch may delete many waiting keys: more than the default 30 s, but never unbounded.
        await using var command = dataSource.CreateCommand(sql);
        command.CommandTimeout = 300;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The 1-minute load average: the machine is shared, and the figures mean little without it.</summary>
    private static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";

    private static async Task<string> ServerVersionAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SHOW server_version");
        return (string)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}

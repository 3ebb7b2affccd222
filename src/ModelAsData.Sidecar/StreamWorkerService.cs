using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Postgres.Listening;
using Npgsql;

namespace ModelAsData.Sidecar;

/// <summary>
/// Streams watched prediction tables: drains <c>mad.outbox</c> in batches (<see cref="RefreshTaskRunner.StreamBatchAsync"/>)
/// on start, on a <c>mad_rows</c> notification, after a reconnect of the listener and on a poll. While it finds work it
/// polls every millisecond with <c>mad.stream_wake.idle</c> cleared, so writers do not NOTIFY; after
/// <see cref="BusyWindow"/> without work it sets the flag, drains once more (rows committed before writers saw the flag)
/// and sleeps until a NOTIFY or <see cref="IdlePoll"/>.
/// </summary>
internal sealed partial class StreamWorkerService : BackgroundService
{
    public const string RowsChannel = "mad_rows";

    private static readonly TimeSpan BusyWindow = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan IdlePoll = TimeSpan.FromSeconds(1);

    private readonly NpgsqlDataSource _dataSource;
    private readonly RefreshTaskRunner _runner;
    private readonly ILogger _logger;
    private readonly WakeSignal _wake = new();

    public StreamWorkerService(NpgsqlDataSource dataSource, PostgresListener listener, SidecarOptions options, ModelAsData.Core.Onnx.ModelCache cache,
        ILogger<StreamWorkerService> logger)
    {
        _dataSource = dataSource;
        _logger = logger;
        _runner = new RefreshTaskRunner(dataSource, cache, options.BatchSize);
        listener.Connected += (_, _) => _wake.Set();
        listener.Notified += (_, notification) =>
        {
            if (notification.Channel == RowsChannel)
            {
                _wake.Set();
            }
        };
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var lastWork = System.Diagnostics.Stopwatch.GetTimestamp();
        var idle = false;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    if (idle)
                    {
                        await SetIdleAsync(false, stoppingToken);
                        idle = false;
                    }

                    if (await DrainAsync(stoppingToken))
                    {
                        lastWork = System.Diagnostics.Stopwatch.GetTimestamp();
                        continue;
                    }

                    if (System.Diagnostics.Stopwatch.GetElapsedTime(lastWork) < BusyWindow)
                    {
                        await Task.Delay(1, stoppingToken);
                        continue;
                    }

                    await SetIdleAsync(true, stoppingToken);
                    idle = true;
                    if (await DrainAsync(stoppingToken))
                    {
                        lastWork = System.Diagnostics.Stopwatch.GetTimestamp();
                        continue;
                    }

                    await _wake.WaitAsync(IdlePoll, stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    LogDrainFailed(_logger, e);
                    await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    /// <summary>Drains every watched table until its outbox is empty, in turns; returns whether anything was drained.</summary>
    private async Task<bool> DrainAsync(CancellationToken cancellationToken)
    {
        string[] tables;
        int batchRows;
        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
        {
            tables = (await connection.QueryAsync<string>(new CommandDefinition(
                "SELECT p.name FROM mad.prediction_tables p WHERE p.watched ORDER BY p.name", cancellationToken: cancellationToken))).ToArray();
            if (tables.Length == 0)
            {
                return false;
            }

            batchRows = await connection.ExecuteScalarAsync<int>(new CommandDefinition(
                "SELECT mad.setting_int('stream_batch_rows', 1000)", cancellationToken: cancellationToken));
        }

        // One batch per table per pass, so a table written without pause does not starve the others.
        var any = false;
        var pending = tables.ToList();
        while (pending.Count > 0)
        {
            foreach (var table in pending.ToArray())
            {
                var result = await _runner.StreamBatchAsync(table, batchRows, cancellationToken);
                if (result.Keys == 0)
                {
                    pending.Remove(table);
                    continue;
                }

                any = true;
                LogBatch(_logger, table, result.Keys, result.Rows, result.Failed, result.Deleted);
            }
        }

        return any;
    }

    private async Task SetIdleAsync(bool idle, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition("UPDATE mad.stream_wake SET idle = @idle WHERE id = 1 AND idle <> @idle",
            new { idle }, cancellationToken: cancellationToken));
    }

    [LoggerMessage(EventId = 2401, Level = LogLevel.Debug, Message = "Streamed {Table}: {Keys} keys, {Rows} rows scored, {Failed} with an error, {Deleted} predictions deleted")]
    private static partial void LogBatch(ILogger logger, string table, int keys, long rows, long failed, long deleted);

    [LoggerMessage(EventId = 2402, Level = LogLevel.Warning, Message = "Draining the outbox failed; retrying")]
    private static partial void LogDrainFailed(ILogger logger, Exception exception);
}

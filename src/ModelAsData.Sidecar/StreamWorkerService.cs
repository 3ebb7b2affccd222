using ModelAsData.Postgres;
using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres.Listening;
using ModelAsData.Postgres.Streaming;
using ModelAsData.Sidecar.Online;
using Npgsql;

namespace ModelAsData.Sidecar;

/// <summary>
/// Streams watched prediction tables: drains their outboxes (<c>mad_outbox.&lt;name&gt;</c>) in batches
/// (<see cref="StreamDrain"/>), a batch per table in turns. How it hears of new rows depends on their rate: below
/// <see cref="PollAbove"/> keys/s writers' capture functions NOTIFY <c>mad_rows</c> and the worker sleeps until one does
/// (or <see cref="IdlePoll"/>, the safety net); above it, NOTIFY would serialise the writers' commits, so the worker
/// has the capture functions rewritten without it (<c>mad.stream_set_notify</c>) and polls every few milliseconds,
/// until the rate falls below <see cref="NotifyBelow"/>. A table whose batch fails is retried
/// with a growing pause (its keys stay queued) and its error is shown by <c>mad tables status</c>; the others go on.
/// </summary>
internal sealed partial class StreamWorkerService : BackgroundService
{
    /// <summary>Keys/s above which writers stop NOTIFYing and the worker polls; below <see cref="NotifyBelow"/> they NOTIFY again.</summary>
    private const double PollAbove = 1_500;
    private const double NotifyBelow = 500;

    /// <summary>The pause between passes while busy: long enough for rows to gather, short enough for the latency goal.</summary>
    private static readonly TimeSpan MinPause = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan MaxPause = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan IdlePoll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ReportInterval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan MaxRetryPause = TimeSpan.FromSeconds(30);

    private readonly StreamDrain _drain;
    private readonly StreamCatchUp _catchUp;
    private readonly SidecarOptions _options;
    private readonly StreamMetrics _metrics;
    private readonly ILogger _logger;
    private readonly WakeSignal _wake = new();
    private readonly Dictionary<string, StreamTableState> _states = [];
    private long _reportedAt = Stopwatch.GetTimestamp();

    public StreamWorkerService(NpgsqlDataSource dataSource, PostgresListener listener, SidecarOptions options, ModelCache cache, OnlineMetrics metrics,
        ILogger<StreamWorkerService> logger)
    {
        _drain = new StreamDrain(dataSource, cache, options.BatchSize);
        _options = options;
        _metrics = new StreamMetrics(metrics);
        _logger = logger;
        _catchUp = new StreamCatchUp(dataSource, cache, options, _metrics, logger);
        listener.Connected += (_, _) =>
        {
            _drain.Invalidate(); // notifications may have been missed
            _catchUp.Invalidate();
            _wake.Set();
        };
        listener.Notified += (_, notification) =>
        {
            if (notification.Channel == Protocol.Channels.Rows)
            {
                if (notification.Payload.StartsWith(Protocol.Channels.PlanChangedPrefix, StringComparison.Ordinal))
                {
                    _drain.Invalidate(); // watch, unwatch, or a refresh that swapped a watched table in
                    _catchUp.Invalidate();
                }

                _wake.Set();
            }
            else if (notification.Channel == Protocol.Channels.Models)
            {
                _drain.Invalidate(); // an alias may have moved
                _catchUp.Invalidate();
            }
        };
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await HandBackWakeUpAsync(cancellationToken);
        await _drain.DisposeAsync();
        await _catchUp.DisposeAsync();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var catchingUp = _catchUp.RunAsync(stoppingToken);
        var notifying = true;
        var modeSent = false;
        var rate = new DrainRate();
        var failures = 0;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    if (!modeSent)
                    {
                        await _drain.SetNotifyAsync(notifying, stoppingToken);
                        modeSent = true;
                    }

                    var started = Stopwatch.GetTimestamp();
                    var drained = await DrainAllAsync(stoppingToken);
                    var took = Stopwatch.GetElapsedTime(started);
                    rate.Add(drained);
                    await ReportIfDueAsync(stoppingToken);
                    failures = 0;
                    if (notifying && rate.PerSecond > PollAbove)
                    {
                        // Too many commits to have each one NOTIFY (it serialises them): poll instead.
                        notifying = modeSent = false;
                        continue;
                    }

                    if (!notifying && rate.PerSecond < NotifyBelow)
                    {
                        // Quiet again: writers wake us. Drain once more at once, for rows captured before their NOTIFY came back.
                        notifying = true;
                        modeSent = false;
                        continue;
                    }

                    if (notifying)
                    {
                        await _wake.WaitAsync(IdlePoll, stoppingToken);
                    }
                    else
                    {
                        // Let rows gather rather than pay a batch for every commit: at least a millisecond, and twice
                        // what the last pass took, so that under load batches grow and the drain keeps to about a
                        // third of the time (it runs on the writers' cores).
                        await Task.Delay(Clamp(2 * took, MinPause, MaxPause), stoppingToken);
                    }
                }
                catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
                {
                    // The database went away or the connection broke: nothing was committed; start again on a new one.
                    failures++;
                    var pause = RetryPause(failures);
                    LogSessionFailed(_logger, e, (long)pause.TotalMilliseconds);
                    modeSent = false;
                    await Task.Delay(pause, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }

        try
        {
            await catchingUp;
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped with the worker.
        }
    }

    /// <summary>
    /// Drains every watched table, a batch per table in turns, until each batch comes back less than half full (the
    /// writers are not ahead); returns the keys drained.
    /// </summary>
    private async Task<int> DrainAllAsync(CancellationToken cancellationToken)
    {
        var pending = (await _drain.WatchedTablesAsync(cancellationToken)).Where(t => State(t).MayRetry).ToList();
        var keys = 0;
        while (pending.Count > 0)
        {
            foreach (var table in pending.ToArray())
            {
                var drained = await DrainBatchAsync(table, cancellationToken);
                keys += drained ?? 0;
                if (drained is null || drained < _drain.BatchRows / 2)
                {
                    pending.Remove(table);
                }
                else
                {
                    _catchUp.Help(table); // the writers are ahead: a second drain overlaps with this one
                }
            }
        }

        return keys;
    }

    /// <summary>
    /// A drain that polls lets writers NOTIFY again as it stops (unless another drain polls), so that sidecars still
    /// running hear of new rows at once rather than at their idle poll. Best effort: a session that ends lets go too.
    /// </summary>
    private async Task HandBackWakeUpAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            await _drain.SetNotifyAsync(true, timeout.Token);
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            LogHandBackFailed(_logger, e.Message);
        }
    }

    private static TimeSpan Clamp(TimeSpan value, TimeSpan min, TimeSpan max) => value < min ? min : value > max ? max : value;

    /// <summary>One batch of one table; returns the keys it drained, or null when none waited or it failed.</summary>
    private async Task<int?> DrainBatchAsync(string table, CancellationToken cancellationToken)
    {
        var state = State(table);
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await _drain.DrainAsync(table, cancellationToken);
            if (state.Error is not null)
            {
                LogRecovered(_logger, table);
                state.Succeeded();
            }

            if (result.PlanChanged)
            {
                return _drain.BatchRows; // the keys are back in the outbox: drain them again at once, with the new plan
            }

            if (result.Keys == 0)
            {
                return null;
            }

            _metrics.BatchDuration.WithLabels(table).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
            _metrics.Count(table, result);
            state.Rows += result.Rows;
            LogBatch(_logger, table, result.Keys, result.Rows, result.Failed, result.Deleted);
            return result.Keys;
        }
        catch (Exception e) when (e is PostgresException { IsTransient: false } or ModelAsDataException or InvalidDataException && !cancellationToken.IsCancellationRequested)
        {
            // The table's batch cannot be done as it stands (a column dropped, a model that no longer fits, a privilege
            // revoked): its keys stay queued; pause this table, say why, and keep streaming the others. (A terminated
            // session or a deadlock is transient: it goes to the session's retry, not to the table's error.)
            _metrics.Batches.WithLabels(table, "error").Inc();
            state.Failed(e.Message, RetryPause(state.Failures + 1));
            LogTableFailed(_logger, e, table, (long)RetryPause(state.Failures).TotalMilliseconds);
            await _drain.ReportAsync(_options.SidecarId, table, state.Rows, 0, state.Error, cancellationToken);
            state.ReportedError = state.Error;
            return null;
        }
    }

    /// <summary>Every <see cref="ReportInterval"/>: each table's rows/s and error into <c>mad.stream_stats</c>, and its lag into the metrics.</summary>
    private async Task ReportIfDueAsync(CancellationToken cancellationToken)
    {
        var elapsed = Stopwatch.GetElapsedTime(_reportedAt);
        if (elapsed < ReportInterval)
        {
            return;
        }

        _reportedAt = Stopwatch.GetTimestamp();
        foreach (var table in await _drain.WatchedTablesAsync(cancellationToken))
        {
            var state = State(table);
            state.Rows += _catchUp.TakeRows(table);
            var rate = (state.Rows - state.ReportedRows) / elapsed.TotalSeconds;
            state.ReportedRows = state.Rows;
            _metrics.RowsPerSecond.WithLabels(table).Set(rate);
            var (waiting, oldest) = await _drain.LagAsync(table, cancellationToken);
            _metrics.Waiting.WithLabels(table).Set(waiting);
            _metrics.OldestAge.WithLabels(table).Set(oldest);
            if (rate > 0 || state.ReportedRate > 0 || state.Error != state.ReportedError)
            {
                await _drain.ReportAsync(_options.SidecarId, table, state.Rows, rate, state.Error, cancellationToken);
                state.ReportedRate = rate;
                state.ReportedError = state.Error;
            }
        }
    }

    private StreamTableState State(string table)
    {
        if (!_states.TryGetValue(table, out var state))
        {
            state = new StreamTableState();
            _states[table] = state;
        }

        return state;
    }

    private static TimeSpan RetryPause(int failures) =>
        TimeSpan.FromMilliseconds(Math.Min(MaxRetryPause.TotalMilliseconds, 500 * Math.Pow(2, Math.Min(failures - 1, 10))));

    [LoggerMessage(EventId = Protocol.LogEvents.StreamBatch, Level = LogLevel.Debug, Message = "Streamed {Table}: {Keys} keys, {Rows} rows scored, {Failed} with an error, {Deleted} predictions deleted")]
    private static partial void LogBatch(ILogger logger, string table, int keys, long rows, long failed, long deleted);

    [LoggerMessage(EventId = Protocol.LogEvents.StreamSessionFailed, Level = LogLevel.Warning, Message = "Streaming lost its database session; starting again in {DelayMs} ms (nothing was committed)")]
    private static partial void LogSessionFailed(ILogger logger, Exception exception, long delayMs);

    [LoggerMessage(EventId = Protocol.LogEvents.StreamTableFailed, Level = LogLevel.Error, Message = "Streaming {Table} failed; its keys stay queued and it is retried in {DelayMs} ms")]
    private static partial void LogTableFailed(ILogger logger, Exception exception, string table, long delayMs);

    [LoggerMessage(EventId = Protocol.LogEvents.StreamTableRecovered, Level = LogLevel.Information, Message = "Streaming {Table} works again")]
    private static partial void LogRecovered(ILogger logger, string table);

    [LoggerMessage(EventId = Protocol.LogEvents.StreamHandBackFailed, Level = LogLevel.Debug, Message = "Stopping: could not let writers NOTIFY again ({Reason}); they will once this session ends")]
    private static partial void LogHandBackFailed(ILogger logger, string reason);
}

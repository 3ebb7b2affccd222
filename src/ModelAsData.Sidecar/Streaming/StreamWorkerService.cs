using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Listening;
using ModelAsData.Postgres.Streaming;
using ModelAsData.Sidecar.Requests;
using Npgsql;

namespace ModelAsData.Sidecar.Streaming;

/// <summary>
/// Streams watched prediction tables: drains their outboxes (<c>mad_outbox.&lt;name&gt;</c>) in batches
/// (<see cref="StreamDrain"/>), pass after pass (<see cref="StreamPass"/>), waking as <see cref="StreamWakeMode"/>
/// says (NOTIFY or polling, by the rate of new rows), reporting every few seconds (<see cref="StreamStats"/>). This
/// type is the loop: it hears the listener, and starts again on a new session when the database goes away.
/// </summary>
internal sealed partial class StreamWorkerService : BackgroundService
{
    /// <summary>How long after a NOTIFY-mode switch gave up on its lock the worker tries again.</summary>
    private static readonly TimeSpan NotifyLockRetry = TimeSpan.FromSeconds(5);

    private readonly StreamDrain _drain;
    private readonly StreamCatchUp _catchUp;
    private readonly StreamWakeMode _mode;
    private readonly StreamPass _pass;
    private readonly StreamStats _stats;
    private readonly ILogger _logger;

    public StreamWorkerService(NpgsqlDataSource dataSource, PostgresListener listener, SidecarOptions options, ModelCache cache, RequestMetrics metrics,
        ILogger<StreamWorkerService> logger)
    {
        _drain = new StreamDrain(dataSource, cache, options.BatchSize);
        var streamMetrics = new StreamMetrics(metrics);
        var states = new StreamTableStates();
        _logger = logger;
        _catchUp = new StreamCatchUp(dataSource, cache, options, streamMetrics, logger);
        _mode = new StreamWakeMode(_drain, logger);
        _pass = new StreamPass(_drain, _catchUp, states, streamMetrics, options.SidecarId, logger);
        _stats = new StreamStats(_drain, _catchUp, states, streamMetrics, options.SidecarId);
        listener.Connected += (_, _) =>
        {
            _drain.Invalidate(); // notifications may have been missed
            _catchUp.Invalidate();
            _mode.Wake();
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

                _mode.Wake();
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
        _mode.Dispose();
        base.Dispose();
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await _mode.HandBackAsync(cancellationToken);
        await _drain.DisposeAsync();
        await _catchUp.DisposeAsync();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var catchingUp = _catchUp.RunAsync(stoppingToken);
        var failures = 0;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    if (_mode.MustSend)
                    {
                        await SendModeAsync(stoppingToken);
                    }

                    var started = Stopwatch.GetTimestamp();
                    var drained = await _pass.DrainAllAsync(stoppingToken);
                    var took = Stopwatch.GetElapsedTime(started);
                    _mode.Count(drained);
                    await _stats.ReportIfDueAsync(stoppingToken);
                    failures = 0;
                    if (_mode.Switched())
                    {
                        continue;
                    }

                    await _mode.WaitAsync(took, stoppingToken);
                }
                catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
                {
                    // The database went away or the connection broke: nothing was committed; start again on a new one.
                    failures++;
                    var pause = StreamBackoff.After(failures);
                    LogSessionFailed(_logger, e, (long)pause.TotalMilliseconds);
                    _mode.Lost();
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
    /// Tells the writers the mode; a lock wait that ran out (someone holds <c>stream_notify</c> or <c>stream_poll</c>:
    /// any login can) is said with who holds it, and the drain goes on in the writers' current mode (at worst woken by
    /// the idle poll) until the next try.
    /// </summary>
    private async Task SendModeAsync(CancellationToken stoppingToken)
    {
        try
        {
            await _mode.SendAsync(stoppingToken);
        }
        catch (PostgresException e) when (PostgresLockHolders.IsLockTimeout(e))
        {
            _mode.Defer(NotifyLockRetry);
            LogNotifyLockTimeout(_logger, e.MessageText, e.Hint ?? "", (long)NotifyLockRetry.TotalMilliseconds);
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.StreamNotifyLockTimeout, Level = LogLevel.Warning,
        Message = "Streaming could not switch writers' NOTIFY mode: {Reason} {Hint} Streaming goes on; trying again in {DelayMs} ms")]
    private static partial void LogNotifyLockTimeout(ILogger logger, string reason, string hint, long delayMs);

    [LoggerMessage(EventId = Protocol.LogEvents.StreamSessionFailed, Level = LogLevel.Warning, Message = "Streaming lost its database session; starting again in {DelayMs} ms (nothing was committed)")]
    private static partial void LogSessionFailed(ILogger logger, Exception exception, long delayMs);
}

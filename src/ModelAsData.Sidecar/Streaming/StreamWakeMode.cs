using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Streaming;
using Npgsql;

namespace ModelAsData.Sidecar.Streaming;

/// <summary>
/// How the stream worker hears of new rows, by their rate: below <see cref="PollAbove"/> keys/s writers' capture
/// functions NOTIFY <c>mad_rows</c> and the worker sleeps until one does (or <see cref="IdlePoll"/>, the safety net);
/// above it, NOTIFY would serialise the writers' commits, so writers are told not to (<c>mad.stream_set_notify</c>)
/// and the worker polls every few milliseconds, until the rate falls below <see cref="NotifyBelow"/>.
/// </summary>
internal sealed partial class StreamWakeMode(StreamDrain drain, ILogger logger) : IDisposable
{
    /// <summary>Keys/s above which writers stop NOTIFYing and the worker polls; below <see cref="NotifyBelow"/> they NOTIFY again.</summary>
    private const double PollAbove = 1_500;
    private const double NotifyBelow = 500;

    /// <summary>The pause between passes while busy: long enough for rows to gather, short enough for the latency goal.</summary>
    private static readonly TimeSpan MinPause = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan MaxPause = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan IdlePoll = TimeSpan.FromSeconds(1);

    private readonly WakeSignal _wake = new();
    private readonly DrainRate _rate = new();
    private bool _notifying = true;
    private bool _sent;
    private long _sendAfter;

    /// <summary>Rows were announced (or may have been missed): a worker waiting in notify mode wakes.</summary>
    public void Wake() => _wake.Set();

    /// <summary>Whether the writers must be told the mode: at start, after a switch, and on a new session (unless deferred).</summary>
    public bool MustSend => !_sent && Stopwatch.GetTimestamp() >= _sendAfter;

    /// <summary>
    /// Telling the writers gave up waiting for a lock (someone holds it): drain on in the mode the writers have, and
    /// tell them again after <paramref name="delay"/>, not at every pass (each try waits the whole lock_timeout).
    /// </summary>
    public void Defer(TimeSpan delay)
    {
        _sent = false;
        _sendAfter = Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>Tells the writers whether to NOTIFY. A failure leaves it to the caller, which calls <see cref="Lost"/>.</summary>
    public Task SendAsync(CancellationToken cancellationToken)
    {
        _sent = true;
        return drain.SetNotifyAsync(_notifying, cancellationToken);
    }

    /// <summary>The session broke: the mode is sent again on the next one.</summary>
    public void Lost() => _sent = false;

    /// <summary>Counts a pass's keys into the rate that picks the mode.</summary>
    public void Count(int drained) => _rate.Add(drained);

    /// <summary>Switches the mode if the rate says so; true when it did, and the worker should send it and drain again at once.</summary>
    public bool Switched()
    {
        if (_notifying && _rate.PerSecond > PollAbove)
        {
            // Too many commits to have each one NOTIFY (it serialises them): poll instead.
            _notifying = _sent = false;
            return true;
        }

        if (!_notifying && _rate.PerSecond < NotifyBelow)
        {
            // Quiet again: writers wake us. Drain once more at once, for rows captured before their NOTIFY came back.
            _notifying = true;
            _sent = false;
            return true;
        }

        return false;
    }

    /// <summary>
    /// Waits until the next pass: for a wake-up (or <see cref="IdlePoll"/>) while writers NOTIFY; while polling, lets
    /// rows gather rather than pay a batch for every commit: at least a millisecond, and twice what the last pass
    /// took, so that under load batches grow and the drain keeps to about a third of the time (it runs on the
    /// writers' cores).
    /// </summary>
    public Task WaitAsync(TimeSpan lastPass, CancellationToken cancellationToken) =>
        _notifying ? _wake.WaitAsync(IdlePoll, cancellationToken) : Task.Delay(Clamp(2 * lastPass, MinPause, MaxPause), cancellationToken);

    /// <summary>
    /// A drain that polls lets writers NOTIFY again as it stops (unless another drain polls), so that sidecars still
    /// running hear of new rows at once rather than at their idle poll. Best effort: a session that ends lets go too.
    /// </summary>
    public async Task HandBackAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            await drain.SetNotifyAsync(true, timeout.Token);
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            LogHandBackFailed(logger, e.Message);
        }
    }

    public void Dispose() => _wake.Dispose();

    private static TimeSpan Clamp(TimeSpan value, TimeSpan min, TimeSpan max) => value < min ? min : value > max ? max : value;

    [LoggerMessage(EventId = Protocol.LogEvents.StreamHandBackFailed, Level = LogLevel.Debug, Message = "Stopping: could not let writers NOTIFY again ({Reason}); they will once this session ends")]
    private static partial void LogHandBackFailed(ILogger logger, string reason);
}

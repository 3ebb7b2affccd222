using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres.Listening;

/// <summary>
/// LISTENs on channels over one dedicated connection (not pooled, with keepalive) and raises an event per
/// notification. When the connection drops it reconnects with exponential backoff and raises
/// <see cref="Connected"/> again: notifications sent while it was away are lost, so handlers of
/// <see cref="Connected"/> rescan for work (a notification is a wake-up call, never the only copy of the work).
/// Handlers run on the listening loop: keep them short (signal a worker, do not work). One <see cref="RunAsync"/>
/// at a time; owns its connection, which closes when <see cref="RunAsync"/> ends.
/// </summary>
public sealed partial class PostgresListener
{
    private readonly string _connectionString;
    private readonly IReadOnlyList<string> _channels;
    private readonly PostgresListenerOptions _options;
    private readonly ILogger _logger;
    private volatile int _processId;

    public PostgresListener(string connectionString, IEnumerable<string> channels, PostgresListenerOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(channels);
        _options = options ?? new PostgresListenerOptions();
        _options.Validate();
        // Channel names become identifiers in LISTEN: only validated names get there, and they are quoted too.
        _channels = channels.Select(c => Names.Validate(c, "channel")).ToList();
        if (_channels.Count == 0)
        {
            throw new ArgumentException("Give at least one channel to listen on.", nameof(channels));
        }

        var builder = PostgresConnectionString.Parse(connectionString);
        // A dedicated session: a pooled one would be reset (UNLISTEN) or shared.
        builder.Pooling = false;
        builder.KeepAlive = (int)Math.Ceiling(_options.KeepAliveInterval.TotalSeconds);
        builder.TcpKeepAlive = true;
        builder.ApplicationName = _options.ApplicationName;
        PostgresConnectionString.PinSearchPath(builder);
        _connectionString = builder.ConnectionString;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Raised for each notification on one of the channels.</summary>
    public event EventHandler<PostgresNotification>? Notified;

    /// <summary>Raised once LISTEN is in place: on the first connection and after every reconnect.</summary>
    public event EventHandler? Connected;

    /// <summary>Raised when the connection is lost or cannot be made, before the backoff wait.</summary>
    public event EventHandler<Exception>? Disconnected;

    /// <summary>The server process id of the listening session, or 0 while disconnected.</summary>
    public int ProcessId => _processId;

    /// <summary>Listens until <paramref name="cancellationToken"/> is cancelled; never throws for a lost connection.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var attempt = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(_connectionString);
                await connection.OpenAsync(cancellationToken);
                connection.Notification += OnNotification;
                await using (var listen = connection.CreateCommand())
                {
                    listen.CommandText = string.Concat(_channels.Select(c => $"LISTEN \"{c}\";"));
                    await listen.ExecuteNonQueryAsync(cancellationToken);
                }

                _processId = connection.ProcessID;
                attempt = 0;
                LogListening(_logger, string.Join(", ", _channels), connection.ProcessID);
                Raise(() => Connected?.Invoke(this, EventArgs.Empty), "Connected");
                while (true)
                {
                    await connection.WaitAsync(cancellationToken);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or IOException)
            {
                _processId = 0;
                attempt++;
                var delay = Backoff(attempt);
                LogDisconnected(_logger, e, attempt, (long)delay.TotalMilliseconds);
                Raise(() => Disconnected?.Invoke(this, e), "Disconnected");
                try
                {
                    await Task.Delay(delay, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        _processId = 0;
    }

    private void OnNotification(object sender, NpgsqlNotificationEventArgs e) =>
        Raise(() => Notified?.Invoke(this, new PostgresNotification(e.Channel, e.Payload, e.PID)), "Notified");

    /// <summary>A failing handler is logged, never allowed to end the loop that every other handler relies on.</summary>
    private void Raise(Action raise, string eventName)
    {
        try
        {
            raise();
        }
        catch (Exception e)
        {
            LogHandlerFailed(_logger, e, eventName);
        }
    }

    /// <summary>Doubling from the minimum, capped, with ±20% jitter so several sidecars do not reconnect in step.</summary>
    private TimeSpan Backoff(int attempt)
    {
        var ms = _options.MinDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 16));
        ms = Math.Min(ms, _options.MaxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(ms * (0.8 + 0.4 * Random.Shared.NextDouble()));
    }

    [LoggerMessage(EventId = Protocol.LogEvents.Listening, Level = LogLevel.Information, Message = "Listening on {Channels} (backend {ProcessId})")]
    private static partial void LogListening(ILogger logger, string channels, int processId);

    [LoggerMessage(EventId = Protocol.LogEvents.ListenerDisconnected, Level = LogLevel.Warning, Message = "Listener connection lost or refused (attempt {Attempt}); reconnecting in {DelayMs} ms")]
    private static partial void LogDisconnected(ILogger logger, Exception exception, int attempt, long delayMs);

    [LoggerMessage(EventId = Protocol.LogEvents.ListenerHandlerFailed, Level = LogLevel.Error, Message = "A handler of the listener's {Event} event failed")]
    private static partial void LogHandlerFailed(ILogger logger, Exception exception, string @event);
}

using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// One dedicated connection of the request worker: it LISTENs on <c>mad_requests</c>, holds the ticket, and loops:
/// claim from the table when a notification says to (and scan for orphans at start and after every quiet
/// <see cref="SidecarOptions.RequestPollInterval"/>), answer, then wait on the connection for the next notification.
/// Ends with an exception when the connection breaks; the worker opens a new one.
/// </summary>
internal sealed partial class RequestSession : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly RequestInbox _inbox;
    private readonly RequestClaim _claim;
    private readonly RequestAnswers _answers;
    private readonly TimeSpan _pollInterval;

    private RequestSession(NpgsqlConnection connection, RequestInbox inbox, RequestClaim claim, RequestAnswers answers, TimeSpan pollInterval)
    {
        _connection = connection;
        _inbox = inbox;
        _claim = claim;
        _answers = answers;
        _pollInterval = pollInterval;
    }

    /// <summary>Connects, LISTENs and takes the first ticket; the models' references are forgotten (notifications were missed while disconnected).</summary>
    public static async Task<RequestSession> OpenAsync(NpgsqlDataSource dataSource, SidecarOptions options, RequestInbox inbox, RequestScorer scorer,
        RequestModels models, ILogger logger, CancellationToken cancellationToken)
    {
        var builder = PostgresConnectionString.Parse(dataSource.ConnectionString);
        builder.Pooling = false; // the session holds the ticket and the LISTEN: it must be ours alone
        builder.KeepAlive = (int)Math.Ceiling(options.Listener.KeepAliveInterval.TotalSeconds);
        builder.TcpKeepAlive = true;
        builder.ApplicationName = "mad serve (requests)";
        // Its own session, never a pooler's (mad serve refuses one): the claim and the answers, run thousands of times
        // a second under load, are parsed and planned once.
        builder.MaxAutoPrepare = 8;
        builder.AutoPrepareMinUsages = 2;
        var connection = new NpgsqlConnection(builder.ConnectionString);
        RequestClaim? claim = null;
        try
        {
            await connection.OpenAsync(cancellationToken);
            connection.Notification += inbox.OnNotification;
            await using (var session = new NpgsqlCommand(RequestSql.Session, connection))
            {
                await session.ExecuteNonQueryAsync(cancellationToken);
            }

            claim = new RequestClaim(connection, options.SidecarId);
            var answers = await RequestAnswers.ArmAsync(connection, options.SidecarId, scorer, claim, cancellationToken);
            models.ForgetReferences();
            LogListening(logger, options.SidecarId, connection.ProcessID);
            return new RequestSession(connection, inbox, claim, answers, options.RequestPollInterval);
        }
        catch
        {
            if (claim is not null)
            {
                await claim.DisposeAsync();
            }

            await connection.DisposeAsync();
            throw;
        }
    }

    public async Task RunAsync(CancellationToken stoppingToken)
    {
        var scan = true;
        while (!stoppingToken.IsCancellationRequested)
        {
            _inbox.Reset();
            // Only the table says what to answer: a notification (anyone may send one) only says when to look.
            if (_inbox.TakeClaimNeeded() || scan)
            {
                var requests = await _claim.ClaimAsync(scan, stoppingToken);
                scan = false;
                while (requests.Count > 0)
                {
                    // Whatever arrived while this batch was scored is in the claim that comes back with its answers.
                    _inbox.TakeClaimNeeded();
                    requests = await _answers.AnswerAsync(requests, stoppingToken);
                }

                if (_inbox.Woken)
                {
                    continue; // a request may have come after the last claim
                }
            }

            while (!_inbox.Woken)
            {
                if (!await _connection.WaitAsync(_pollInterval, stoppingToken))
                {
                    scan = true;
                    break;
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _claim.DisposeAsync();
        await _connection.DisposeAsync();
    }

    [LoggerMessage(EventId = Protocol.LogEvents.RequestWorkerListening, Level = LogLevel.Information, Message = "Sidecar {SidecarId} answers online requests (backend {ProcessId})")]
    private static partial void LogListening(ILogger logger, string sidecarId, int processId);
}

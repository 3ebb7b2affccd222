using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Answers <c>mad.requests</c> (from <c>CALL mad.predict</c> and <c>mad.predict_async</c>): keeps one
/// <see cref="RequestSession"/> open, and opens a new one, after a growing pause, whenever it breaks. The session's
/// parts: <see cref="RequestInbox"/> (what notifications say), <see cref="RequestClaim"/>, <see cref="RequestScorer"/>
/// and <see cref="RequestAnswers"/> (answers and the ticket that wakes waiters).
/// </summary>
internal sealed partial class RequestWorker : BackgroundService
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly SidecarOptions _options;
    private readonly RequestModels _models;
    private readonly RequestInbox _inbox;
    private readonly RequestScorer _scorer;
    private readonly ILogger _logger;

    public RequestWorker(NpgsqlDataSource dataSource, SidecarOptions options, RequestModels models, PredictionLog log, RequestMetrics metrics, ShadowQueue shadows,
        ILogger<RequestWorker> logger)
    {
        _dataSource = dataSource;
        _options = options;
        _models = models;
        _inbox = new RequestInbox(options.SidecarId, models);
        _scorer = new RequestScorer(models, log, metrics, shadows);
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var attempt = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var session = await RequestSession.OpenAsync(_dataSource, _options, _inbox, _scorer, _models, _logger, stoppingToken);
                attempt = 0;
                await session.RunAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException or ModelAsDataException)
            {
                attempt++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(250 * Math.Pow(2, Math.Min(attempt - 1, 10)), 10_000) * (0.8 + (0.4 * Random.Shared.NextDouble())));
                LogSessionFailed(_logger, e, (long)delay.TotalMilliseconds);
                try
                {
                    await Task.Delay(delay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.RequestSessionFailed, Level = LogLevel.Warning, Message = "The request worker's session failed; reconnecting in {DelayMs} ms")]
    private static partial void LogSessionFailed(ILogger logger, Exception exception, long delayMs);
}

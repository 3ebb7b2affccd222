using ModelAsData.Postgres;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres.Listening;

namespace ModelAsData.Sidecar.Validation;

/// <summary>
/// The sidecar's first job: validates pending versions on start, on every <c>pushed</c> notification on
/// <c>mad_models</c> (heard by the shared listener, which <see cref="ListenerService"/> runs), after every reconnect (notifications sent meanwhile are lost) and at least every
/// <see cref="SidecarOptions.PollInterval"/>. Stops claiming when the host stops; a validation in flight finishes or
/// rolls back, leaving its version pending.
/// </summary>
internal sealed partial class ModelValidationService : BackgroundService
{
    private readonly PendingVersionValidator _validator;
    private readonly SidecarOptions _options;
    private readonly ILogger _logger;
    private readonly WakeSignal _wake = new();

    public ModelValidationService(PendingVersionValidator validator, PostgresListener listener, SidecarOptions options, ILogger<ModelValidationService> logger)
    {
        _validator = validator;
        _options = options;
        _logger = logger;
        listener.Connected += (_, _) => _wake.Set();
        listener.Notified += (_, notification) =>
        {
            if (notification.Channel == Protocol.Channels.Models && IsPush(notification.Payload))
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
        LogStarted(_logger, _options.SidecarId);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await DrainAsync(stoppingToken);
                await _wake.WaitAsync(_options.PollInterval, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
        finally
        {
            LogStopped(_logger, _options.SidecarId);
        }
    }

    private async Task DrainAsync(CancellationToken stoppingToken)
    {
        try
        {
            await _validator.ValidatePendingAsync(stoppingToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The database is away or refused: the listener's reconnect (or the poll) brings us back here.
            LogScanFailed(_logger, e);
        }
    }

    /// <summary>Only new versions need work; our own "ready"/"rejected" notifications and alias moves do not.</summary>
    private static bool IsPush(string payload)
    {
        try
        {
            using var document = JsonDocument.Parse(payload);
            return !document.RootElement.TryGetProperty("event", out var kind) || kind.ValueEquals("pushed");
        }
        catch (JsonException)
        {
            return true; // unknown sender: a scan is cheap
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.ValidationStarted, Level = LogLevel.Information, Message = "Sidecar {SidecarId} validates pending model versions")]
    private static partial void LogStarted(ILogger logger, string sidecarId);

    [LoggerMessage(EventId = Protocol.LogEvents.ValidationStopped, Level = LogLevel.Information, Message = "Sidecar {SidecarId} stopped validating")]
    private static partial void LogStopped(ILogger logger, string sidecarId);

    [LoggerMessage(EventId = Protocol.LogEvents.ValidationScanFailed, Level = LogLevel.Warning, Message = "Scanning for pending model versions failed; retrying on reconnect or poll")]
    private static partial void LogScanFailed(ILogger logger, Exception exception);
}

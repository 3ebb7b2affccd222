using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar;

/// <summary>
/// At start, warns once for each right the sidecar's login holds beyond what it needs (<see cref="SidecarLogin"/>):
/// a warning, never a refusal, so a laptop's superuser still serves, and an operator sees it in the first lines of the log.
/// </summary>
internal sealed partial class SidecarLoginCheckService(NpgsqlDataSource dataSource, ILogger<SidecarLoginCheckService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            foreach (var excess in await SidecarLogin.ExcessAsync(dataSource, stoppingToken))
            {
                LogExcess(logger, excess);
            }
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
        {
            LogCheckFailed(logger, e.Message); // the database went away: the other services say so and reconnect
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.LoginHasTooMuch, Level = LogLevel.Warning, Message = "{Excess}")]
    private static partial void LogExcess(ILogger logger, string excess);

    [LoggerMessage(EventId = Protocol.LogEvents.LoginCheckFailed, Level = LogLevel.Debug, Message = "Could not check what the sidecar's login may do: {Reason}")]
    private static partial void LogCheckFailed(ILogger logger, string reason);
}

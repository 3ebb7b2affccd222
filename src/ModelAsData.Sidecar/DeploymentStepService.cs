using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar;

/// <summary>
/// Steps due canaries (<c>mad.advance_deployments</c>: their gates, then the next percent, a promotion or an abort)
/// every <see cref="SidecarOptions.HeartbeatInterval"/>. On a timer of its own, apart from the heartbeat: a gate can
/// read much of <c>mad.prediction_log</c>, and while it ran in the heartbeat's loop a slow one delayed the next
/// heartbeat; a heartbeat older than <c>sidecar_presumed_dead_seconds</c> makes callers see no live sidecar (55M03).
/// </summary>
internal sealed partial class DeploymentStepService(NpgsqlDataSource dataSource, SidecarOptions options, ILogger<DeploymentStepService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.HeartbeatInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                    await connection.ExecuteAsync(new CommandDefinition(SidecarSql.AdvanceDeployments, new { id = options.SidecarId }, cancellationToken: stoppingToken));
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException)
                {
                    LogStepFailed(logger, e, options.SidecarId);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.DeploymentStepFailed, Level = LogLevel.Warning, Message = "Sidecar {SidecarId} could not step its deployments (mad.advance_deployments)")]
    private static partial void LogStepFailed(ILogger logger, Exception exception, string sidecarId);
}

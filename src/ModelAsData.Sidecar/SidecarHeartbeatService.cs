using System.Reflection;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar;

/// <summary>
/// Registers the sidecar in <c>mad.sidecars</c> and stamps its heartbeat on its own timer, so slow validation can
/// never make a live sidecar look dead; marks it stopped on a clean shutdown. Deployments step on a timer of their
/// own (<see cref="DeploymentStepService"/>): their gates can be slow, and a late heartbeat is a sidecar callers
/// stop seeing (mad.ticket_held, sidecar_presumed_dead_seconds).
/// </summary>
internal sealed partial class SidecarHeartbeatService : BackgroundService
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly SidecarOptions _options;
    private readonly ILogger _logger;

    public SidecarHeartbeatService(NpgsqlDataSource dataSource, SidecarOptions options, ILogger<SidecarHeartbeatService> logger)
    {
        _dataSource = dataSource;
        _options = options;
        _logger = logger;
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
            await connection.ExecuteAsync(new CommandDefinition(SidecarSql.Stopped, new { id = _options.SidecarId }, cancellationToken: cancellationToken));
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            LogHeartbeatFailed(_logger, e, _options.SidecarId); // best effort: its heartbeat simply stops
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var registered = false;
        using var timer = new PeriodicTimer(_options.HeartbeatInterval);
        do
        {
            try
            {
                await using var connection = await _dataSource.OpenConnectionAsync(stoppingToken);
                if (registered)
                {
                    await connection.ExecuteAsync(new CommandDefinition(SidecarSql.Heartbeat, new { id = _options.SidecarId }, cancellationToken: stoppingToken));
                }
                else
                {
                    await connection.ExecuteAsync(new CommandDefinition(SidecarSql.Register, new
                    {
                        id = _options.SidecarId,
                        host = Environment.MachineName,
                        pid = Environment.ProcessId,
                        info = JsonSerializer.Serialize(new { version = Version(), jobs = new[] { "validate" } }),
                    }, cancellationToken: stoppingToken));
                    registered = true;
                    LogRegistered(_logger, _options.SidecarId);
                }
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                LogHeartbeatFailed(_logger, e, _options.SidecarId);
            }
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static string Version() =>
        typeof(SidecarHeartbeatService).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    [LoggerMessage(EventId = Protocol.LogEvents.SidecarRegistered, Level = LogLevel.Information, Message = "Sidecar {SidecarId} registered in mad.sidecars")]
    private static partial void LogRegistered(ILogger logger, string sidecarId);

    [LoggerMessage(EventId = Protocol.LogEvents.HeartbeatFailed, Level = LogLevel.Warning, Message = "Sidecar {SidecarId} could not update mad.sidecars")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception, string sidecarId);
}

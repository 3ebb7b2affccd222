using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Postgres.Listening;
using ModelAsData.Sidecar.Refresh;
using ModelAsData.Sidecar.Requests;
using ModelAsData.Sidecar.Streaming;
using ModelAsData.Sidecar.Validation;

namespace ModelAsData.Sidecar;

/// <summary>Registers the sidecar's services in a host.</summary>
public static class SidecarServiceCollectionExtensions
{
    /// <summary>
    /// Adds the sidecar's hosted services (the check of its login's rights, heartbeat, the shared listener, model validation, requests, refresh,
    /// streaming), its <see cref="PendingVersionValidator"/> and one <see cref="Npgsql.NpgsqlDataSource"/> for
    /// <paramref name="connectionString"/>, owned by the container. The <see cref="PostgresListener"/> is one
    /// singleton that <see cref="ListenerService"/> runs; the services that wake on it subscribe to it.
    /// </summary>
    public static IServiceCollection AddModelAsDataSidecar(this IServiceCollection services, string connectionString, SidecarOptions? options = null)
    {
        options ??= new SidecarOptions();
        options.Validate();
        var dataSource = PostgresDataSource.Create(connectionString, "mad serve", pinSearchPath: true, lockTimeout: options.LockTimeout);
        services.AddSingleton(options);
        services.AddSingleton(dataSource);
        services.AddSingleton(provider => new PostgresListener(connectionString, [Protocol.Channels.Models, Protocol.Channels.Jobs, Protocol.Channels.Rows], options.Listener,
            provider.GetRequiredService<ILogger<PostgresListener>>()));
        services.AddSingleton<PendingVersionValidator>();
        services.AddHostedService<SidecarLoginCheckService>();
        services.AddHostedService<SidecarHeartbeatService>();
        services.AddHostedService<DeploymentStepService>();
        services.AddHostedService<ListenerService>();
        services.AddHostedService<ModelValidationService>();
        services.AddModelAsDataRequests(options);
        services.TryAddSingleton(_ => new ModelCache(options.Scoring));
        services.AddHostedService<RefreshWorkerService>();
        services.AddHostedService<StreamWorkerService>();
        services.AddHostedService<Monitoring.DriftGaugeService>(); // issue 16: drift gauges on /metrics
        services.AddHostedService<Monitoring.OutcomeGaugeService>(); // issue 17: outcome floors on /metrics
        return services;
    }
}

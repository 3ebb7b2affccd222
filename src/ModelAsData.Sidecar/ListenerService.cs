using Microsoft.Extensions.Hosting;
using ModelAsData.Postgres.Listening;

namespace ModelAsData.Sidecar;

/// <summary>
/// Runs the sidecar's one shared <see cref="PostgresListener"/> (LISTEN on <c>mad_models</c>, <c>mad_jobs</c>,
/// <c>mad_rows</c>) for the host's lifetime. The services that wake on it (validation, refresh, streaming) only
/// subscribe, in their constructors, so every handler is in place before the first notification: the host builds
/// all hosted services before it starts any.
/// </summary>
internal sealed class ListenerService(PostgresListener listener) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => listener.RunAsync(stoppingToken);
}

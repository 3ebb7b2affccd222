using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ModelAsData.Postgres.Listening;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>A sidecar running in-process through <see cref="SidecarHost"/> against a test database; disposing stops it.</summary>
public sealed class RunningSidecar : IAsyncDisposable
{
    private readonly IHost _host;

    private RunningSidecar(IHost host, SidecarOptions options)
    {
        _host = host;
        Options = options;
    }

    public SidecarOptions Options { get; }

    /// <summary>The sidecar's services (its HTTP endpoint, metrics…).</summary>
    public IServiceProvider Services => _host.Services;

    /// <summary>The sidecar's LISTEN connection.</summary>
    public PostgresListener Listener => _host.Services.GetRequiredService<PostgresListener>();

    public static async Task<RunningSidecar> StartAsync(string connectionString, SidecarOptions? options = null)
    {
        options ??= new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5) };
        var host = SidecarHost.Build(connectionString, options);
        await host.StartAsync(TestContext.Current.CancellationToken);
        return new RunningSidecar(host, options);
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _host.StopAsync(timeout.Token);
        _host.Dispose();
    }
}

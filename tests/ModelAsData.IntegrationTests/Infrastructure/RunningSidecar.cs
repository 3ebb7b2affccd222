using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ModelAsData.Postgres.Listening;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>A sidecar running in-process through <see cref="SidecarHost"/> against a test database; disposing stops it.</summary>
public sealed class RunningSidecar : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly PostgresDatabase? _loginDatabase;

    private RunningSidecar(IHost host, SidecarOptions options, PostgresDatabase? loginDatabase = null, string? login = null)
    {
        _host = host;
        Options = options;
        _loginDatabase = loginDatabase;
        Login = login;
    }

    public SidecarOptions Options { get; }

    /// <summary>The login of a sidecar started by <see cref="StartAsSidecarLoginAsync"/>; null for the fixture's superuser.</summary>
    public string? Login { get; }

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

    /// <summary>
    /// A sidecar as production runs it: logged in as a new role that holds only <c>mad_sidecar</c> (no superuser, no
    /// grant on any source), dropped again on dispose.
    /// </summary>
    public static async Task<RunningSidecar> StartAsSidecarLoginAsync(PostgresDatabase database, SidecarOptions? options = null)
    {
        const string password = "test-only";
        var login = Sql.UniqueName("sidecar");
        await database.DataSource.ExecuteAsync($"CREATE ROLE {login} LOGIN PASSWORD '{password}' IN ROLE mad_sidecar");
        options ??= new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5) };
        var host = SidecarHost.Build(database.ConnectionStringFor(login, password), options);
        await host.StartAsync(TestContext.Current.CancellationToken);
        return new RunningSidecar(host, options, database, login);
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _host.StopAsync(timeout.Token);
        _host.Dispose();
        if (_loginDatabase is not null)
        {
            NpgsqlConnection.ClearAllPools();
            await _loginDatabase.DataSource.ExecuteAsync($"DROP OWNED BY {Login}; DROP ROLE IF EXISTS {Login}");
        }
    }
}

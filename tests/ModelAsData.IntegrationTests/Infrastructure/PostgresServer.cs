using System.Collections.Concurrent;
using System.Globalization;
using Testcontainers.PostgreSql;

[assembly: AssemblyFixture(typeof(ModelAsData.IntegrationTests.Infrastructure.PostgresServer))]

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>
/// The PostgreSQL server every integration test uses (DESIGN.md, "PostgreSQL in tests and in CI"), in order:
/// <c>MAD_TEST_PG</c> if set; else a throwaway cluster from the installed binaries; else a Testcontainers container
/// when a Docker engine answers; else a failure saying how to get one. Never a skip. Each test class gets its own
/// database from <see cref="CreateDatabaseAsync"/>, so classes run in parallel.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    public const string EnvironmentVariable = "MAD_TEST_PG";

    private readonly ConcurrentDictionary<string, bool> _databases = new(StringComparer.Ordinal);
    private ThrowawayCluster? _cluster;
    private PostgreSqlContainer? _container;
    private string? _adminConnectionString;

    /// <summary>A superuser (or CREATEDB + CREATEROLE) connection to the server's maintenance database.</summary>
    public string AdminConnectionString => _adminConnectionString ?? throw new InvalidOperationException("The server has not started.");

    /// <summary>Where the server came from, for messages.</summary>
    public string Source { get; private set; } = "";

    public async ValueTask InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } external)
        {
            _adminConnectionString = external;
            Source = $"{EnvironmentVariable}";
        }
        else if (ThrowawayCluster.FindBinaries() is { } bin)
        {
            _cluster = await ThrowawayCluster.StartAsync(bin);
            _adminConnectionString = _cluster.ConnectionString;
            Source = $"throwaway cluster from {bin} on port {_cluster.Port}";
        }
        else
        {
            _adminConnectionString = await StartContainerAsync();
            Source = "Testcontainers";
        }

        await using var connection = new NpgsqlConnection(AdminConnectionString);
        try
        {
            await connection.OpenAsync();
        }
        catch (NpgsqlException e)
        {
            throw new InvalidOperationException($"The test PostgreSQL server ({Source}) does not answer: {e.Message}", e);
        }
    }

    /// <summary>Creates an empty database with a unique name and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix)
    {
        var name = string.Create(CultureInfo.InvariantCulture, $"mad_{prefix.ToLowerInvariant()}_{Guid.NewGuid():N}");
        name = name[..Math.Min(name.Length, 63)];
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await create.ExecuteNonQueryAsync();
        }

        _databases[name] = true;

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString;
    }

    public async Task DropDatabaseAsync(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name.Replace("\"", "\"\"", StringComparison.Ordinal)}\" WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
        _databases.TryRemove(name, out _);
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_cluster is null && _adminConnectionString is not null)
        {
            // A server we do not own keeps nothing of ours: drop what the tests created and did not drop.
            foreach (var name in _databases.Keys)
            {
                await DropDatabaseAsync(new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString);
            }
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }

    private async Task<string> StartContainerAsync()
    {
        PostgreSqlContainer? container = null;
        try
        {
            // Build() already fails when no Docker endpoint is configured; StartAsync when the engine does not answer.
            container = new PostgreSqlBuilder("postgres:15-alpine").Build();
            await container.StartAsync();
        }
        catch (Exception e)
        {
            if (container is not null)
            {
                await container.DisposeAsync();
            }

            throw new InvalidOperationException(
                "No PostgreSQL for the integration tests: MAD_TEST_PG is not set, no PostgreSQL server binaries were found " +
                "(looked in /usr/lib/postgresql/*/bin and on PATH), and no Docker engine answered " +
                $"({e.GetType().Name}: {e.Message}). Install PostgreSQL (`apt-get install postgresql`), or set " +
                "MAD_TEST_PG to a connection string of a server where the user may CREATE DATABASE and CREATE ROLE, " +
                "e.g. MAD_TEST_PG=\"Host=localhost;Username=postgres;Password=...\".", e);
        }

        _container = container;
        return container.GetConnectionString();
    }
}

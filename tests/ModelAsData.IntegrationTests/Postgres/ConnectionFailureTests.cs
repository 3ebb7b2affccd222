using System.Net;
using System.Net.Sockets;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Postgres;

public sealed class ConnectionFailureTests(PostgresServer server)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 90_000)]
    public async Task No_database_at_all_is_a_clear_error_naming_host_port_and_what_to_do()
    {
        var port = PortWithNothingListening();
        var connectionString = $"Host=127.0.0.1;Port={port};Database=mad;Username=mad;Timeout=5";

        var registry = await Assert.ThrowsAsync<ModelAsDataException>(() => PostgresModelRegistry.OpenAsync(connectionString, Ct));
        var sidecar = await Assert.ThrowsAsync<ModelAsDataException>(() => SidecarHost.RunAsync(connectionString, cancellationToken: Ct));

        foreach (var error in new[] { registry, sidecar })
        {
            Assert.Equal(ErrorCode.Database, error.Code);
            Assert.Contains($"Cannot connect to PostgreSQL at 127.0.0.1:{port}/mad (connection refused", error.Message, StringComparison.Ordinal);
            Assert.Contains("apt-get install postgresql", error.Message, StringComparison.Ordinal);
            Assert.Contains("--db / MAD_DB", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task A_database_that_does_not_exist_is_named_in_the_error()
    {
        var connectionString = new NpgsqlConnectionStringBuilder(server.AdminConnectionString) { Database = "no_such_database" }.ConnectionString;

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => PostgresModelRegistry.OpenAsync(connectionString, Ct));

        Assert.Equal(ErrorCode.Database, error.Code);
        Assert.Contains("no_such_database", error.Message, StringComparison.Ordinal);
        Assert.Contains("createdb", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_database_that_was_never_migrated_says_to_run_migrate()
    {
        var connectionString = await server.CreateDatabaseAsync("unmigrated");
        await using var registry = await PostgresModelRegistry.OpenAsync(connectionString, Ct);

        var list = await Assert.ThrowsAsync<ModelAsDataException>(() => registry.ListAsync(Ct));
        var serve = await Assert.ThrowsAsync<ModelAsDataException>(() => SidecarHost.RunAsync(connectionString, cancellationToken: Ct));

        Assert.Equal(ErrorCode.Database, list.Code);
        Assert.Contains("mad db migrate", list.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.Database, serve.Code);
        Assert.Contains("mad db migrate", serve.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task Text_that_is_not_a_connection_string_is_an_invalid_argument()
    {
        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => PostgresModelRegistry.OpenAsync("this is not=a;connection string", Ct));

        Assert.Equal(ErrorCode.InvalidArgument, error.Code);
        Assert.Contains("Host=", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_postgres_uri_works_like_a_connection_string()
    {
        var settings = new NpgsqlConnectionStringBuilder(await server.CreateDatabaseAsync("uri"));
        var password = string.IsNullOrEmpty(settings.Password) ? "" : ":" + Uri.EscapeDataString(settings.Password);
        var uri = $"postgresql://{Uri.EscapeDataString(settings.Username!)}{password}@{settings.Host}:{settings.Port}/{settings.Database}?application_name=uri_test";

        await using var registry = await PostgresModelRegistry.OpenAsync(uri, Ct);
        await registry.MigrateAsync(Ct);

        Assert.Empty(await registry.ListAsync(Ct));
    }

    private static int PortWithNothingListening()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port; // closed again when disposed
    }
}

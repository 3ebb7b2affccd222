using ModelAsData.Postgres;
using ModelAsData.Postgres.Migrations;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>
/// A fresh database of the test server for one test class (a class fixture), migrated, with one data source.
/// Tests that need a database of their own (migration tests) ask <see cref="Server"/> for one.
/// </summary>
public sealed class PostgresDatabase : IAsyncLifetime
{
    public PostgresDatabase(PostgresServer server)
    {
        Server = server;
    }

    public PostgresServer Server { get; }

    public string ConnectionString { get; private set; } = "";

    public NpgsqlDataSource DataSource { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        ConnectionString = await Server.CreateDatabaseAsync("t");
        DataSource = PostgresDataSource.Create(ConnectionString, "mad tests");
        await new PostgresMigrator(DataSource).MigrateAsync();
    }

    /// <summary>A connection string for the same database as another login role.</summary>
    public string ConnectionStringFor(string username, string password) =>
        new NpgsqlConnectionStringBuilder(ConnectionString) { Username = username, Password = password, Pooling = false }.ConnectionString;

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        await Server.DropDatabaseAsync(ConnectionString);
    }
}

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>
/// A test class that runs against one fresh, migrated database of the test server, shared by its tests (a class
/// fixture), so each class need only name itself and pass the fixture on.
/// </summary>
public abstract class DatabaseTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    protected PostgresDatabase Database { get; } = database;

    /// <summary>The running test's token, cancelled when it times out or the run is aborted.</summary>
    protected static CancellationToken Ct => TestContext.Current.CancellationToken;
}

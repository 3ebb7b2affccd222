namespace ModelAsData.IntegrationTests.Streaming;

/// <summary>A <see cref="DatabaseTests"/> class whose tests stream into prediction tables of its database.</summary>
public abstract class WatchedTableTests(PostgresDatabase database) : DatabaseTests(database)
{
    /// <summary>A flowers table of <paramref name="rows"/> rows and a prediction table over it (not watched).</summary>
    protected Task<(string Source, string Name)> CreatedAsync(int rows, string? model = null) =>
        StreamingTables.CreatedAsync(Database, rows, model);

    /// <summary>A flowers table of <paramref name="rows"/> rows and a watched prediction table over it.</summary>
    protected Task<(string Source, string Name)> WatchedAsync(int rows, string? model = null) =>
        StreamingTables.WatchedAsync(Database, rows, model);

    protected Task<long> WaitForAsync(string sql, long expected, TimeSpan? timeout = null) =>
        StreamingTables.WaitForAsync(Database, sql, expected, timeout);
}

using ModelAsData.IntegrationTests.Batch;

namespace ModelAsData.IntegrationTests.Streaming;

/// <summary>Watched iris tables, and waiting for what streaming makes visible.</summary>
internal static class StreamingTables
{
    public const string Setosa = "5.1, 3.5, 1.4, 0.2";
    public const string Virginica = "6.9, 3.1, 5.4, 2.1";

    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(10);

    /// <summary>A flowers table of <paramref name="rows"/> rows and a prediction table over it (not watched).</summary>
    public static async Task<(string Source, string Name)> CreatedAsync(PostgresDatabase database, int rows, string? model = null)
    {
        var tables = new ModelAsData.Postgres.Jobs.PostgresPredictionTables(new ModelAsData.Postgres.Registry.PostgresModelRegistry(database.DataSource), TimeSpan.FromMilliseconds(50));
        if (model is null)
        {
            (model, tables) = await BatchTables.ReadyModelAsync(database);
        }

        var source = await BatchTables.CreateFlowersAsync(database.DataSource, rows);
        var name = Sql.UniqueName("stream");
        await BatchTables.CreateAsync(tables, name, source, model);
        return (source, name);
    }

    public static async Task<(string Source, string Name)> WatchedAsync(PostgresDatabase database, int rows, string? model = null)
    {
        var (source, name) = await CreatedAsync(database, rows, model);
        await database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        return (source, name);
    }

    public static Task<long> WaitForAsync(PostgresDatabase database, string sql, long expected, TimeSpan? timeout = null) =>
        Eventually.WaitForAsync(() => database.DataSource.ScalarAsync<long>(sql), v => v == expected, $"{sql} = {expected}", timeout ?? Soon);
}

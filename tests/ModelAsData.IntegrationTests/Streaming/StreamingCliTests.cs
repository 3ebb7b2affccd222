using ModelAsData.IntegrationTests.Batch;

namespace ModelAsData.IntegrationTests.Streaming;

/// <summary><c>mad tables watch | unwatch | status</c> and <c>mad jobs</c> through the real parser.</summary>
public sealed class StreamingCliTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Tables_watch_status_and_unwatch_work_and_status_shows_the_lag()
    {
        var (model, _) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 0);
        var name = Sql.UniqueName("cli");
        await RunAsync("tables", "create", name, "--model", model, "--source", source, "--key", "id", "--features", BatchTables.IrisFeatures);

        var before = await RunAsync("tables", "status", name);
        var watch = await RunAsync("tables", "watch", name);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 5.0, 3.0, 1.5, 0.2 FROM generate_series(1, 42) g");
        var waiting = await RunAsync("tables", "status", name);
        var jobs = await RunAsync("jobs");
        var unwatch = await RunAsync("tables", "unwatch", name);
        var after = await RunAsync("tables", "status", name);

        Assert.Contains("not watched", before.Output, StringComparison.Ordinal);
        Assert.True(watch.ExitCode == 0, watch.Output);
        Assert.Contains("Watching", watch.Output, StringComparison.Ordinal);
        Assert.True(waiting.ExitCode == 0, waiting.Output);
        Assert.Contains("42 keys waiting", waiting.Output, StringComparison.Ordinal);
        Assert.True(jobs.ExitCode == 0, jobs.Output);
        Assert.Contains("streaming (watched tables)", jobs.Output, StringComparison.Ordinal);
        Assert.Matches($@"{name}\s*│\s*42\s*│", jobs.Output);
        Assert.True(unwatch.ExitCode == 0, unwatch.Output);
        Assert.Contains("not watched", after.Output, StringComparison.Ordinal);
    }
}

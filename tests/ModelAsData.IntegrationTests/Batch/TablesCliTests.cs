namespace ModelAsData.IntegrationTests.Batch;

/// <summary><c>mad tables</c> and <c>mad jobs</c> on PostgreSQL through the real parser.</summary>
public sealed class TablesCliTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Tables_create_refresh_status_list_and_jobs_work_on_postgres()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, _) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3_000);
        var name = Sql.UniqueName("cli");

        var create = await RunAsync("tables", "create", name, "--model", model, "--source", source, "--key", "id", "--features", BatchTables.IrisFeatures);
        var started = await RunAsync("tables", "refresh", name);
        var jobId = await Database.DataSource.ScalarAsync<long>("SELECT max(id) FROM mad.jobs WHERE prediction_table = @name", new { name });
        var followed = await RunAsync("jobs", "follow", jobId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var watched = await RunAsync("jobs", "watch", jobId.ToString(System.Globalization.CultureInfo.InvariantCulture)); // DESIGN.md's name, kept hidden
        var waited = await RunAsync("tables", "refresh", name, "--wait");
        var status = await RunAsync("tables", "status", name);
        var list = await RunAsync("tables", "list");
        var jobs = await RunAsync("jobs");

        Assert.True(create.ExitCode == 0, create.Output);
        Assert.Contains($"mad_out.{name}", create.Output, StringComparison.Ordinal);
        Assert.True(started.ExitCode == 0, started.Output);
        Assert.Contains($"Started job {jobId}", started.Output, StringComparison.Ordinal);
        Assert.Contains($"Follow it with: mad jobs follow {jobId}", started.Output, StringComparison.Ordinal);
        Assert.True(followed.ExitCode == 0, followed.Output);
        Assert.Contains("done", followed.Output, StringComparison.Ordinal);
        Assert.True(watched.ExitCode == 0, watched.Output);
        Assert.Contains("done", watched.Output, StringComparison.Ordinal);
        Assert.True(waited.ExitCode == 0, waited.Output);
        Assert.Contains("scored 3,000 rows", waited.Output, StringComparison.Ordinal);
        Assert.Contains("rows/s", waited.Output, StringComparison.Ordinal);
        Assert.Contains("3,000", status.Output, StringComparison.Ordinal);
        Assert.Contains(name, list.Output, StringComparison.Ordinal);
        Assert.Contains("3,000/3,000", jobs.Output, StringComparison.Ordinal);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
    }

    [Fact(Timeout = 60_000)]
    public async Task Refresh_wait_with_no_sidecar_running_says_to_start_one()
    {
        var (model, _) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 10);
        var name = Sql.UniqueName("lonely");
        await RunAsync("tables", "create", name, "--model", model, "--source", source, "--key", "id", "--features", BatchTables.IrisFeatures);

        var result = await RunAsync("tables", "refresh", name, "--wait");

        Assert.Equal(19, result.ExitCode);
        Assert.Contains("none is running: start one with `mad serve", result.Output, StringComparison.Ordinal);
        Assert.Contains("running", await Database.DataSource.ScalarAsync<string>("SELECT state FROM mad.jobs WHERE prediction_table = @name", new { name }), StringComparison.Ordinal);
    }
}

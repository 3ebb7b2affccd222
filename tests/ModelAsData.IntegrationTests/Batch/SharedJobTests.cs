using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>Several sidecars on one job: each task is done once, whoever runs it.</summary>
public sealed class SharedJobTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Two_sidecars_share_a_job_and_each_task_is_done_exactly_once()
    {
        await BatchTables.SmallTasksAsync(Database.DataSource, rowsPerTask: 1_000);
        var options = new SidecarOptions { PollInterval = TimeSpan.FromSeconds(5), BatchSize = 4 };
        await using var first = await RunningSidecar.StartAsync(Database.ConnectionString, options with { SidecarId = "first" });
        await using var second = await RunningSidecar.StartAsync(Database.ConnectionString, options with { SidecarId = "second" });
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 40_000);
        var name = Sql.UniqueName("shared");
        await BatchTables.CreateAsync(tables, name, source, model);

        var job = await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct));

        Assert.Equal("done", job.State);
        Assert.Equal(40, job.TasksTotal);
        var tasks = await Database.DataSource.QueryAsync<(string State, int Attempts, long Rows, string Sidecar)>(
            "SELECT state, attempts, rows_done, sidecar FROM mad.tasks WHERE job_id = @id", new { id = job.Id });
        Assert.All(tasks, t => Assert.Equal(("done", 1), (t.State, t.Attempts)));
        Assert.Equal(40_000, tasks.Sum(t => t.Rows));
        Assert.Equal(["first", "second"], tasks.Select(t => t.Sidecar).Distinct().Order());
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_sidecar_whose_connections_are_terminated_mid_job_reconnects_and_finishes()
    {
        await BatchTables.SmallTasksAsync(Database.DataSource, rowsPerTask: 2_000);
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString,
            new SidecarOptions { SidecarId = "terminated", PollInterval = TimeSpan.FromSeconds(30), BatchSize = 2 });
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 100_000);
        var name = Sql.UniqueName("terminated");
        await BatchTables.CreateAsync(tables, name, source, model);
        var id = await tables.StartRefreshAsync(name, Ct);
        await Eventually.WaitForAsync(() => tables.GetJobAsync(id), j => j.TasksDone >= 2, "two tasks done");

        var terminated = await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'mad serve%' OR application_name = 'mad listener') t");
        var job = await BatchTables.WaitAsync(tables, id, seconds: 150);

        Assert.True(terminated >= 2, $"terminated {terminated} sessions");
        Assert.Equal("done", job.State);
        Assert.Equal(100_000, job.RowsDone);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_sidecar_that_stops_mid_task_gives_the_task_back_at_once_for_another_to_finish()
    {
        await BatchTables.SmallTasksAsync(Database.DataSource, rowsPerTask: 2_000);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 60_000);
        var name = Sql.UniqueName("stopped");
        await BatchTables.CreateAsync(tables, name, source, model);
        var leaving = await RunningSidecar.StartAsync(Database.ConnectionString,
            new SidecarOptions { SidecarId = "leaving", PollInterval = TimeSpan.FromSeconds(30), BatchSize = 1, TaskLease = TimeSpan.FromMinutes(5) });
        var id = await tables.StartRefreshAsync(name, Ct);
        await Eventually.WaitForAsync(() => tables.GetJobAsync(id), j => j.TasksDone >= 1, "a task done");

        await leaving.DisposeAsync();
        var held = await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.tasks WHERE job_id = @id AND state = 'running'", new { id });
        await using var staying = await RunningSidecar.StartAsync(Database.ConnectionString,
            new SidecarOptions { SidecarId = "staying", PollInterval = TimeSpan.FromSeconds(30) });
        var job = await BatchTables.WaitAsync(tables, id);

        // With a five-minute lease, only a task given back at shutdown can be finished this soon.
        Assert.Equal(0, held);
        Assert.Equal("done", job.State);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
    }
}

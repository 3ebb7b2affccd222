using ModelAsData.Bench;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>A sidecar killed with SIGKILL mid-refresh: its lease expires and another sidecar finishes the job.</summary>
public sealed class KilledSidecarTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task Expired_lease_of_a_killed_sidecar_is_reclaimed_and_every_row_gets_exactly_one_prediction()
    {
        await BatchTables.SmallTasksAsync(Database.DataSource, rowsPerTask: 2_000);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 150_000);
        var name = Sql.UniqueName("killed");
        await BatchTables.CreateAsync(tables, name, source, model);
        await using var doomed = SidecarProcess.Start(Database.ConnectionString, SidecarProcess.NewId("killable"), environment: new Dictionary<string, string>
        {
            ["MAD_TASK_LEASE_SECONDS"] = "2",
            ["MAD_BATCH_SIZE"] = "1",
        });
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.sidecars WHERE id = @id", new { id = doomed.Id }),
            n => n > 0 || doomed.HasExited, "the sidecar process to register", TimeSpan.FromSeconds(30));
        Assert.False(doomed.HasExited, doomed.Output);

        var id = await tables.StartRefreshAsync(name, Ct);
        await Eventually.WaitForAsync(() => tables.GetJobAsync(id), j => j.TasksDone >= 2 || j.IsFinished, "the killable sidecar to finish two tasks", TimeSpan.FromSeconds(30));
        doomed.Kill();
        var before = await tables.GetJobAsync(id);
        var held = await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.tasks WHERE job_id = @id AND state = 'running' AND sidecar = @sidecar",
            new { id, sidecar = doomed.Id });
        await using var rescuer = await RunningSidecar.StartAsync(Database.ConnectionString,
            new SidecarOptions { SidecarId = "rescuer", PollInterval = TimeSpan.FromMilliseconds(500), TaskLease = TimeSpan.FromSeconds(2) });
        var job = await BatchTables.WaitAsync(tables, id, seconds: 60);

        Assert.Equal("running", before.State);
        Assert.Equal("done", job.State);
        Assert.Equal(150_000, job.RowsDone);
        // The kill lands inside a task all but a millisecond of each task's ~40: that task's rows rolled back, and the
        // rescuer ran it again once the lease had expired.
        Assert.InRange(held, 0, 1);
        Assert.Equal(held, await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM mad.tasks WHERE job_id = @id AND attempts = 2 AND sidecar = 'rescuer'", new { id }));
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
    }
}

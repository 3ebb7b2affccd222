using ModelAsData.Bench;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Streaming;

/// <summary>
/// A sidecar killed with SIGKILL mid-drain, stopped with SIGSTOP, or whose sessions are terminated: its batch rolls back
/// into the outbox and is drained again, by another sidecar or by itself once it reconnects. (Without the batch's idle
/// timeout the stopped sidecar's keys stayed claimed: the second test waited in vain on 2,000 of them.)
/// </summary>
public sealed class KilledStreamTests(PostgresDatabase database) : WatchedTableTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task A_sidecar_killed_mid_drain_loses_no_row_and_leaves_no_stale_prediction()
    {
        var (source, name) = await WatchedAsync(rows: 0);
        await using var doomed = await SlowSidecarProcessAsync();

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 5.1, 3.5, 1.4, 0.2 FROM generate_series(1, 100000) g");
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"),
            n => n >= 2_000, "the killable sidecar to drain two batches", TimeSpan.FromSeconds(40));
        doomed.Kill();
        var waiting = await Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')");
        // Rows changed after the kill must end with their new values' prediction, never the one the dead sidecar began.
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET (sepal_length, sepal_width, petal_length, petal_width) = (6.9, 3.1, 5.4, 2.1) WHERE id % 1000 = 0");
        await using var rescuer = await RunningSidecar.StartAsync(Database.ConnectionString, new SidecarOptions { SidecarId = "rescuer", PollInterval = TimeSpan.FromMinutes(5) });
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')"),
            n => n == 0, "the outbox to drain", TimeSpan.FromSeconds(60));

        Assert.InRange(waiting, 1, 100_000);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        var labels = await Database.DataSource.QueryAsync<(bool Changed, long Label, long Rows)>(
            $"SELECT s.id % 1000 = 0, p.label, count(*) FROM public.{source} s JOIN mad_out.{name} p USING (id) GROUP BY 1, 2 ORDER BY 1, 2");
        Assert.Equal(2, labels.Count);
        Assert.Equal((false, 99_900L), (labels[0].Changed, labels[0].Rows));
        Assert.Equal((true, 100L), (labels[1].Changed, labels[1].Rows));
        Assert.NotEqual(labels[0].Label, labels[1].Label);
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name} WHERE error IS NOT NULL"));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_sidecar_stopped_mid_drain_gives_its_keys_back_after_the_idle_timeout()
    {
        var (source, name) = await WatchedAsync(rows: 0);
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '1000' WHERE name = 'stream_batch_idle_timeout_ms'");
        try
        {
            await using var stopped = await SlowSidecarProcessAsync();
            await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 5.1, 3.5, 1.4, 0.2 FROM generate_series(1, 50000) g");
            await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"),
                n => n >= 2_000, "the sidecar to drain two batches", TimeSpan.FromSeconds(40));

            stopped.Pause(); // most likely mid-batch: with one row per ONNX Runtime call, scoring is most of a batch
            await using var rescuer = await RunningSidecar.StartAsync(Database.ConnectionString, new SidecarOptions { SidecarId = "rescuer-of-stopped" });
            await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')"),
                n => n == 0, "the outbox to drain, the stopped sidecar's batch included", TimeSpan.FromSeconds(60));

            Assert.False(stopped.HasExited, stopped.Output);
            await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '30000' WHERE name = 'stream_batch_idle_timeout_ms'");
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_sidecar_whose_sessions_are_terminated_mid_drain_reconnects_and_loses_no_row()
    {
        var (source, name) = await WatchedAsync(rows: 0);
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString, new SidecarOptions { SidecarId = "terminated-stream", BatchSize = 1 });

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 5.1, 3.5, 1.4, 0.2 FROM generate_series(1, 50000) g");
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"),
            n => n >= 1_000, "the sidecar to drain a batch", TimeSpan.FromSeconds(40));
        var terminated = await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND (application_name LIKE 'mad serve%' OR application_name = 'mad listener')) t");
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET (sepal_length, sepal_width, petal_length, petal_width) = (6.9, 3.1, 5.4, 2.1) WHERE id % 1000 = 0");
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')"),
            n => n == 0, "the outbox to drain", TimeSpan.FromSeconds(60));

        Assert.True(terminated >= 2, $"terminated {terminated} sessions");
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        var labels = await Database.DataSource.QueryAsync<(bool Changed, long Label, long Rows)>(
            $"SELECT s.id % 1000 = 0, p.label, count(*) FROM public.{source} s JOIN mad_out.{name} p USING (id) GROUP BY 1, 2 ORDER BY 1, 2");
        Assert.Equal([(false, 49_950L), (true, 50L)], labels.Select(l => (l.Changed, l.Rows)));
        Assert.NotEqual(labels[0].Label, labels[1].Label);
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name} WHERE error IS NOT NULL"));
    }

    /// <summary>A `mad serve` process scoring one row per ONNX Runtime call, so that its batches take long; registered.</summary>
    private async Task<SidecarProcess> SlowSidecarProcessAsync()
    {
        var process = SidecarProcess.Start(Database.ConnectionString, SidecarProcess.NewId("killable"), environment: new Dictionary<string, string> { ["MAD_BATCH_SIZE"] = "1" });
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.sidecars WHERE id = @id", new { id = process.Id }),
            n => n > 0 || process.HasExited, "the sidecar process to register", TimeSpan.FromSeconds(30));
        Assert.False(process.HasExited, process.Output);
        return process;
    }
}

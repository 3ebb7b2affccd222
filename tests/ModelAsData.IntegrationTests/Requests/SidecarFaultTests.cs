using ModelAsData.Postgres.Requests;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>No sidecar, a sidecar that stops answering or is killed, a request that waits for a sidecar to start.</summary>
public sealed class SidecarFaultTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task With_no_sidecar_running_call_fails_at_once_saying_to_run_mad_serve()
    {
        var model = await PushIrisAsync();
        var started = DateTime.UtcNow;

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => new PostgresRequestClient(Database.DataSource).CallAsync(model, Setosa, Ct));

        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(2), "it must not wait for a sidecar");
        Assert.Equal(ErrorCode.NotReady, error.Code);
        Assert.Contains("No sidecar is running", error.Message, StringComparison.Ordinal);
        Assert.Contains("mad serve", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_rows_of_a_stopped_sidecar_and_of_a_long_dead_one_do_not_hide_a_live_one()
    {
        // Before 057_2 mad.ticket_held's `ticket` was the column, not its parameter: any worker row of a stopped or
        // stale sidecar made every sidecar look dead, and CALL failed with 55M03 while one answered.
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        var (stopped, dead) = (Sql.UniqueName("stopped"), Sql.UniqueName("dead"));
        await Database.DataSource.ExecuteAsync("""
            INSERT INTO mad.sidecars (id, host, pid, heartbeat_at, stopped_at) VALUES
              (@stopped, 'elsewhere', 1, now(), now()), (@dead, 'elsewhere', 2, now() - interval '1 hour', NULL);
            INSERT INTO mad.request_workers (sidecar, ticket, backend_pid, life) VALUES (@stopped, 11, 1, 12), (@dead, 21, 2, 22);
            """, new { stopped, dead });
        try
        {
            var answer = await new PostgresRequestClient(Database.DataSource).CallAsync(model, Setosa, Ct);
            Assert.Equal(0, answer["label"]!.GetValue<long>());
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("DELETE FROM mad.request_workers WHERE sidecar IN (@stopped, @dead); DELETE FROM mad.sidecars WHERE id IN (@stopped, @dead)",
                new { stopped, dead });
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_request_made_with_no_sidecar_is_answered_when_one_starts()
    {
        var model = await PushIrisAsync();
        var id = await Database.DataSource.ScalarAsync<long>("SELECT mad.predict_async(@model, @features::jsonb)", new { model, features = Virginica });
        Assert.Equal("pending", await Database.DataSource.ScalarAsync<string>("SELECT status FROM mad.requests WHERE id = @id", new { id }));

        await using var sidecar = await StartSidecarAsync();

        var status = await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<string>("SELECT status FROM mad.requests WHERE id = @id", new { id }), s => s != "pending" && s != "running", "the request to be answered");
        Assert.Equal("done", status);
        Assert.Equal(2, await Database.DataSource.ScalarAsync<long>("SELECT (result->>'label')::bigint FROM mad.requests WHERE id = @id", new { id }));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_request_nobody_answers_in_time_expires_with_a_clear_error()
    {
        var model = await PushIrisAsync();
        var id = await Database.DataSource.ScalarAsync<long>("SELECT mad.predict_async(@model, @features::jsonb)", new { model, features = Setosa });
        await Database.DataSource.ExecuteAsync("UPDATE mad.requests SET expires_at = clock_timestamp() - interval '1 second' WHERE id = @id", new { id });

        await using var sidecar = await StartSidecarAsync();

        var row = await Eventually.WaitForAsync(() => Database.DataSource.QueryAsync<(string Status, string? Error)>("SELECT status, error FROM mad.requests WHERE id = @id", new { id }),
            r => r[0].Status == "expired", "the request to expire");
        Assert.Contains("No sidecar answered", row[0].Error, StringComparison.Ordinal);
        Assert.Contains("mad serve", row[0].Error, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_sidecar_that_stops_answering_times_out_and_one_killed_while_a_request_waits_fails_clearly()
    {
        var model = await PushIrisAsync();
        var id = Sql.UniqueName("external");
        using var process = StartExternalSidecar(Database.ConnectionString, id);
        try
        {
            await WaitForWorkerAsync(id);
            Assert.Equal(0, (await new PostgresRequestClient(Database.DataSource).CallAsync(model, Setosa, Ct))["label"]!.GetValue<long>());

            // Frozen: it holds its ticket but answers nothing, so the call times out.
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '1500' WHERE name = 'predict_timeout_ms'");
            Signal(process, "STOP");
            var started = DateTime.UtcNow;
            var timeout = await Assert.ThrowsAsync<ModelAsDataException>(() => new PostgresRequestClient(Database.DataSource).CallAsync(model, Setosa, Ct));
            Assert.Equal(ErrorCode.Timeout, timeout.Code);
            Assert.Contains("did not answer", timeout.Message, StringComparison.Ordinal);
            Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromSeconds(1.2), TimeSpan.FromSeconds(8));

            // Killed while a request waits: its session ends, the waiter wakes and says so, well before the timeout.
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '30000' WHERE name = 'predict_timeout_ms'");
            var waiting = new PostgresRequestClient(Database.DataSource).CallAsync(model, Setosa, Ct);
            await Task.Delay(500, Ct);
            started = DateTime.UtcNow;
            process.Kill();
            var killed = await Assert.ThrowsAsync<ModelAsDataException>(() => waiting);
            Assert.Contains("stopped", killed.Message, StringComparison.Ordinal);
            Assert.Contains("mad serve", killed.Message, StringComparison.Ordinal);
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15), "the waiter must notice the dead sidecar before its timeout");
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }

            await process.WaitForExitAsync(Ct);
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '10000' WHERE name = 'predict_timeout_ms'");
        }
    }
}

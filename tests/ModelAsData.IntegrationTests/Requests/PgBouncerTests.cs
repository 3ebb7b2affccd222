using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Postgres.Requests;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>
/// An application that reaches the database only through PgBouncer in transaction mode (the sidecar connects
/// directly): every call works, and no call leaves session state (locks, settings, LISTEN) on a pooled connection.
/// </summary>
public sealed class PgBouncerTests(PostgresDatabase database, PgBouncer pgBouncer) : OnlineRequestTests(database), IClassFixture<PgBouncer>
{
    [Fact(Timeout = 120_000)]
    public async Task Call_and_async_answers_work_through_pgbouncer_in_transaction_mode_and_leave_no_session_state()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (app, _) = await roles.LoginAsync("app", "IN ROLE mad_user");
        await pgBouncer.AllowAsync(app);
        var databaseName = new NpgsqlConnectionStringBuilder(Database.ConnectionString).Database!;
        await using var pooled = NpgsqlDataSource.Create(pgBouncer.ConnectionString(app, databaseName));

        // More clients than server connections: CALLs queue in PgBouncer for a server session, which each holds for its whole call.
        var errors = new ConcurrentQueue<string>();
        var flowers = new[] { (Setosa, 0L), (Versicolor, 1L), (Virginica, 2L) };
        await Task.WhenAll(Enumerable.Range(0, 4 * PgBouncer.PoolSize).Select(client => Task.Run(async () =>
        {
            for (var i = 0; i < 10; i++)
            {
                var (features, label) = flowers[(client + i) % 3];
                try
                {
                    var answer = JsonNode.Parse(await CallAsync(pooled, model, features))!;
                    if (answer["label"]!.GetValue<long>() != label)
                    {
                        errors.Enqueue($"client {client}: label {answer["label"]} for {features}");
                    }
                }
                catch (PostgresException e)
                {
                    errors.Enqueue($"client {client}: {e.SqlState} {e.MessageText}");
                }
            }
        }, Ct)));
        Assert.Empty(errors);

        // predict_async inside an application's transaction, the answer awaited from another one (no LISTEN) ...
        long id;
        await using (var connection = await pooled.OpenConnectionAsync(Ct))
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            await using var ask = new NpgsqlCommand("SELECT mad.predict_async($1, $2::jsonb)", connection, transaction) { Parameters = { new() { Value = model }, new() { Value = Virginica } } };
            id = (long)(await ask.ExecuteScalarAsync(Ct))!;
            await transaction.CommitAsync(Ct);
        }

        var awaited = await pooled.QueryAsync<(string Status, string Result)>("SELECT status, result::text FROM mad.await_request(@id)", new { id });
        Assert.Equal("done", awaited[0].Status);
        Assert.Equal(2, JsonNode.Parse(awaited[0].Result)!["label"]!.GetValue<long>());
        Assert.Equal(1, (await new PostgresRequestClient(pooled).PredictAsync(model, Versicolor, TimeSpan.FromSeconds(30), Ct))["label"]!.GetValue<long>());

        // ... or polled, each look its own transaction.
        var polled = await pooled.ScalarAsync<long>("SELECT mad.predict_async(@model, @features::jsonb)", new { model, features = Setosa });
        var status = await Eventually.WaitForAsync(() => pooled.ScalarAsync<string>("SELECT status FROM mad.requests WHERE id = @polled", new { polled }), s => s is "done" or "failed", "the polled answer");
        Assert.Equal("done", status);

        // Nothing stays on the server sessions PgBouncer hands out: no advisory lock, no LISTEN, no setting.
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND a.usename = @app", new { app }));
        const string State = "SELECT (SELECT count(*) FROM pg_listening_channels()), current_setting('synchronous_commit'), current_setting('lock_timeout')";
        var fresh = (await Database.DataSource.QueryAsync<(long Listening, string SynchronousCommit, string LockTimeout)>(State))[0];
        for (var i = 0; i < 2 * PgBouncer.PoolSize; i++)
        {
            Assert.Equal(fresh, (await pooled.QueryAsync<(long Listening, string SynchronousCommit, string LockTimeout)>(State))[0]);
        }
    }
}

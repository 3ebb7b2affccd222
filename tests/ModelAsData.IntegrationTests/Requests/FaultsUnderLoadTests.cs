using System.Diagnostics;
using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Migrations;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>
/// Faults while 16 application clients call <c>CALL mad.predict</c> against a real <c>mad serve</c> process: the
/// sidecar killed (SIGKILL) and another started, and PostgreSQL restarted. No call hangs (each ends within its
/// timeout, with its answer or a clear error), calls succeed again afterwards, and no <c>mad.predict_async</c> request
/// is lost. Not timed: the waits are deadlines for things to happen, not measurements.
/// </summary>
public sealed class FaultsUnderLoadTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    private static readonly TimeSpan s_phase = TimeSpan.FromSeconds(90);

    [Fact(Timeout = 300_000)]
    public async Task Sixteen_clients_calling_while_the_sidecar_is_killed_and_another_starts_get_answers_or_clear_errors_and_every_async_request_is_answered()
    {
        var model = await PushIrisAsync();
        var firstId = Sql.UniqueName("doomed");
        var secondId = Sql.UniqueName("successor");
        var first = StartExternalSidecar(Database.ConnectionString, firstId);
        Process? second = null;
        try
        {
            await WaitForArmedAsync(Database.DataSource, firstId);
            await using var load = new CallLoad(Database.ConnectionString, model, clients: 16, async: true);
            await Eventually.WaitForAsync(() => Task.FromResult(load.Successes), n => n >= 100, "100 calls answered", s_phase);

            first.Kill();
            await first.WaitForExitAsync(Ct);
            var killedAt = DateTime.UtcNow;
            // While no sidecar runs, calls are refused at once and async requests wait.
            await Eventually.WaitForAsync(() => Task.FromResult(load.Outcomes.Count(o => o.At > killedAt && o.Outcome.StartsWith("55M03", StringComparison.Ordinal))), n => n >= 16,
                "calls to be refused while no sidecar runs", s_phase);
            var askedWhileDown = load.Asked.Count;

            second = StartExternalSidecar(Database.ConnectionString, secondId);
            await WaitForArmedAsync(Database.DataSource, secondId);
            var resumed = load.Successes;
            await Eventually.WaitForAsync(() => Task.FromResult(load.Successes), n => n >= resumed + 200, "200 more calls answered by the new sidecar", s_phase);
            await load.StopAsync();

            var outcomes = load.Outcomes.ToList();
            AssertNoneHungNorWrong(outcomes);
            var unclear = outcomes.Where(o => o.Outcome != "ok" && !IsClearSidecarError(o.Outcome)).Select(o => o.Outcome).Distinct().Take(5).ToList();
            Assert.True(unclear.Count == 0, $"errors that do not say the sidecar stopped or is missing: {string.Join(" | ", unclear)}");
            Assert.All(outcomes.Where(o => o.Outcome != "ok"), o => Assert.Contains("mad serve", o.Outcome, StringComparison.Ordinal));
            AssertEveryClientEndsAnswered(outcomes);

            // Asked before, during and after the kill: every one answered, with its own label.
            var asked = load.Asked.ToList();
            Assert.True(askedWhileDown > 0 && asked.Count > askedWhileDown, $"async requests asked: {asked.Count}, {askedWhileDown} of them by the time the sidecar was down");
            var ids = asked.Select(a => a.Id).ToArray();
            var rows = await Eventually.WaitForAsync(
                () => Database.DataSource.QueryAsync<(long Id, string Status, long? Label, string? Error)>(
                    "SELECT id, status, (result->>'label')::bigint, error FROM mad.requests WHERE id = ANY(@ids) ORDER BY id", new { ids }),
                r => r.Count == ids.Length && r.All(x => x.Status is not ("pending" or "running")), "every async request to be answered", s_phase);
            var labels = asked.ToDictionary(a => a.Id, a => a.Label);
            var lost = rows.Where(r => r.Status != "done" || r.Label != labels[r.Id]).Select(r => $"{r.Id}: {r.Status} {r.Label} {r.Error}").Take(5).ToList();
            Assert.True(lost.Count == 0, $"async requests not answered as asked: {string.Join(" | ", lost)}");
        }
        finally
        {
            await StopAsync(first);
            await StopAsync(second);
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task After_postgresql_restarts_under_load_the_sidecar_reconnects_and_every_client_is_answered_again()
    {
        // A server of its own: the shared one serves every other test class.
        var bin = ThrowawayCluster.FindBinaries() ?? throw new InvalidOperationException(
            "This test restarts a PostgreSQL cluster of its own: install PostgreSQL's server binaries (apt-get install postgresql) or set MAD_TEST_PG_BIN.");
        await using var cluster = await ThrowawayCluster.StartAsync(bin);
        var model = Sql.UniqueName("iris");
        await using (var admin = PostgresDataSource.Create(cluster.ConnectionString))
        {
            await new PostgresMigrator(admin).MigrateAsync(Ct);
            await new PostgresModelRegistry(admin).PushReadyAsync(model, "skl2onnx_rf_iris.onnx");
        }

        var id = Sql.UniqueName("survivor");
        var sidecar = StartExternalSidecar(cluster.ConnectionString, id);
        await using var direct = NpgsqlDataSource.Create(cluster.ConnectionString);
        try
        {
            await WaitForArmedAsync(direct, id);
            await using var load = new CallLoad(cluster.ConnectionString, model, clients: 16, async: false);
            await Eventually.WaitForAsync(() => Task.FromResult(load.Successes), n => n >= 100, "100 calls answered", s_phase);

            var restarting = DateTime.UtcNow;
            await cluster.RestartAsync();
            var restarted = load.Successes;
            var back = DateTime.UtcNow;
            await WaitForArmedAsync(direct, id);
            await Eventually.WaitForAsync(() => Task.FromResult(load.Successes), n => n >= restarted + 200, "200 calls answered after the restart", s_phase);
            await load.StopAsync();

            var outcomes = load.Outcomes.ToList();
            AssertNoneHungNorWrong(outcomes);
            AssertEveryClientEndsAnswered(outcomes);
            Assert.False(sidecar.HasExited, "the sidecar must reconnect, not exit");
            // Not asserted (no timed tests): how long the clients went unanswered, written for docs/ONLINE.md.
            var firstAnswer = outcomes.First(o => o.At > back && o.Outcome == "ok").At;
            await File.WriteAllTextAsync(Path.Combine(Path.GetTempPath(), "mad-postgres-restart-under-load.txt"),
                $"restart took {(back - restarting).TotalSeconds:0.0} s; first answer {(firstAnswer - back).TotalSeconds:0.0} s after the server was back; " +
                $"errors: {string.Join(", ", outcomes.Where(o => o.Outcome != "ok").GroupBy(o => o.Outcome.Split(' ')[0].TrimEnd(':')).Select(g => $"{g.Key} ×{g.Count()}"))}\n", Ct);
        }
        finally
        {
            await StopAsync(sidecar);
            NpgsqlConnection.ClearAllPools();
        }
    }

    private static bool IsClearSidecarError(string outcome) =>
        outcome.StartsWith(Protocol.SqlStates.NoSidecar, StringComparison.Ordinal)
        || outcome.StartsWith(Protocol.SqlStates.SidecarStopped, StringComparison.Ordinal)
        || outcome.StartsWith(Protocol.SqlStates.Timeout, StringComparison.Ordinal);

    private static void AssertNoneHungNorWrong(List<(DateTime At, int Client, string Outcome)> outcomes)
    {
        var bad = outcomes.Where(o => o.Outcome.StartsWith("hung", StringComparison.Ordinal) || o.Outcome.StartsWith("wrong", StringComparison.Ordinal))
            .Select(o => $"client {o.Client}: {o.Outcome}").Take(5).ToList();
        Assert.True(bad.Count == 0, string.Join(" | ", bad));
    }

    /// <summary>Each client's last calls, made after the fault was over, were answered.</summary>
    private static void AssertEveryClientEndsAnswered(List<(DateTime At, int Client, string Outcome)> outcomes)
    {
        foreach (var client in outcomes.GroupBy(o => o.Client))
        {
            var last = client.Last();
            Assert.True(last.Outcome == "ok", $"client {client.Key}'s last call: {last.Outcome}");
        }
    }

    private static Task WaitForArmedAsync(NpgsqlDataSource dataSource, string sidecarId) =>
        Eventually.WaitForAsync(
            async () =>
            {
                try
                {
                    return await dataSource.ScalarAsync<bool>("SELECT EXISTS (SELECT FROM mad.request_workers w WHERE w.sidecar = @sidecarId AND mad.ticket_held(coalesce(w.life, w.ticket)))", new { sidecarId });
                }
                catch (NpgsqlException)
                {
                    return false; // the server is still coming back
                }
            },
            held => held, $"sidecar {sidecarId}'s request worker to be armed", s_phase);

    private static async Task StopAsync(Process? process)
    {
        if (process is null)
        {
            return;
        }

        if (!process.HasExited)
        {
            process.Kill();
        }

        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        process.Dispose();
    }
}

using System.Diagnostics;
using ModelAsData.IntegrationTests.Requests;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// The request worker's tickets and life lock are advisory locks, and any login may take any advisory lock and read
/// every held one in pg_locks. A login with no mad role at all, typing what is below, must not stall the online door,
/// delay its answers, or make a stopped sidecar look alive.
/// </summary>
public sealed class RequestTicketTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    private const int RequestTicketKey = 1296122962; // 'MADR', public in 001_schemas_and_roles.sql

    /// <summary>The ticket numbers held under the request-ticket key right now, as anyone can read them.</summary>
    private const string HeldTickets = "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND classid = 1296122962 AND objsubid = 2 AND granted";

    [Fact(Timeout = 120_000)]
    public async Task Holding_the_next_ticket_numbers_does_not_stall_the_worker()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (_, attackerSource) = await roles.LoginAsync("mallory");
        await using var attack = await attackerSource.OpenConnectionAsync(Ct);

        // Tickets came from a sequence: the next ones are the highest held plus one, two, …
        await using (var hold = new NpgsqlCommand($"""
            SELECT count(pg_advisory_lock({RequestTicketKey}, (m + n)::int))
            FROM (SELECT max(objid)::bigint AS m FROM pg_locks WHERE locktype = 'advisory' AND classid = {RequestTicketKey}) held,
                 generate_series(1, 500) n
            """, attack))
        {
            await hold.ExecuteNonQueryAsync(Ct);
        }

        for (var i = 0; i < 20; i++)
        {
            var watch = Stopwatch.StartNew();
            Assert.Contains("\"label\"", await CallAsync(Database.DataSource, model, Setosa), StringComparison.Ordinal);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"call {i} took {watch.Elapsed}");
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Queueing_for_the_current_ticket_does_not_delay_the_callers_waiting_on_it()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (attacker, attackerSource) = await roles.LoginAsync("mallory");
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '20000' WHERE name = 'predict_timeout_ms'");

        // Each held ticket, queued for from its own session: when the worker lets one go to wake its callers, the
        // attacker holds it next, and whoever queued behind the attacker waits for the attacker.
        var held = await Database.DataSource.QueryAsync<long>(HeldTickets);
        var queued = await QueueForAsync(attackerSource, held);

        try
        {
            await Task.Delay(300, Ct);
            var watch = Stopwatch.StartNew();
            var calls = Enumerable.Range(0, 8).Select(_ => Task.Run(() => CallAsync(Database.DataSource, model, Setosa), Ct)).ToArray();
            foreach (var answer in await Task.WhenAll(calls))
            {
                Assert.Contains("\"label\"", answer, StringComparison.Ordinal);
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"8 calls took {watch.Elapsed}");
        }
        finally
        {
            await EndAsync(attacker, queued);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_lock_taken_over_from_a_stopped_sidecar_does_not_keep_it_alive()
    {
        var model = await PushIrisAsync();
        var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (attacker, attackerSource) = await roles.LoginAsync("mallory");

        // Queue for every lock the worker holds; the attacker inherits them the moment its session ends.
        var held = await Database.DataSource.QueryAsync<long>(HeldTickets);
        var queued = await QueueForAsync(attackerSource, held);

        try
        {
            await Task.Delay(300, Ct);
            await sidecar.DisposeAsync();
            await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM ({HeldTickets}) h"),
                n => n >= held.Count, "the attacker to hold the stopped worker's locks");

            var watch = Stopwatch.StartNew();
            var error = await Assert.ThrowsAsync<PostgresException>(() => CallAsync(Database.DataSource, model, Setosa));
            Assert.Equal("55M03", error.SqlState);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"the call waited {watch.Elapsed} for a sidecar that is gone");
        }
        finally
        {
            await EndAsync(attacker, queued);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Neither_a_caller_nor_another_engine_can_release_the_workers_ticket_or_take_its_requests()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (_, caller) = await roles.LoginAsync("mallory", "IN ROLE mad_user");
        var (_, engine) = await roles.LoginAsync("rogue_engine", "IN ROLE mad_sidecar");
        Assert.Contains("\"label\"", await CallAsync(Database.DataSource, model, Setosa), StringComparison.Ordinal);
        var worker = await Database.DataSource.ScalarAsync<string>("SELECT sidecar FROM mad.request_workers LIMIT 1");
        var held = (await Database.DataSource.QueryAsync<long>(HeldTickets)).ToList();

        // 057_1's release and claim, typed by a caller: refused outright.
        foreach (var ticket in held)
        {
            var refused = await caller.FailsAsync("SELECT * FROM mad.release_and_claim(@ticket, @worker, 256)", new { ticket, worker });
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
        }

        // Another engine may call it, but an advisory unlock releases only its own session's locks: the worker's
        // tickets stay held, and its callers are still answered.
        foreach (var ticket in held)
        {
            await engine.QueryAsync<long>("SELECT id FROM mad.release_and_claim(@ticket, 'rogue', 256)", new { ticket });
        }

        Assert.Subset((await Database.DataSource.QueryAsync<long>(HeldTickets)).ToHashSet(), held.ToHashSet());
        Assert.Contains("\"label\"", await CallAsync(Database.DataSource, model, Setosa), StringComparison.Ordinal);
    }

    /// <summary>One session per lock, each waiting for it (a blocked pg_advisory_lock) until it is granted.</summary>
    private static async Task<List<(NpgsqlConnection Connection, Task Lock)>> QueueForAsync(NpgsqlDataSource attackerSource, IEnumerable<long> tickets)
    {
        var queued = new List<(NpgsqlConnection, Task)>();
        foreach (var ticket in tickets)
        {
            var connection = await attackerSource.OpenConnectionAsync(Ct);
            queued.Add((connection, new NpgsqlCommand($"SELECT pg_advisory_lock({RequestTicketKey}, {ticket}::int)", connection).ExecuteNonQueryAsync(Ct)));
        }

        return queued;
    }

    /// <summary>Ends the attacker's sessions from the server side, since their commands may still be waiting.</summary>
    private async Task EndAsync(string attacker, List<(NpgsqlConnection Connection, Task Lock)> queued)
    {
        await Database.DataSource.ExecuteAsync("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = @attacker", new { attacker });
        foreach (var (connection, locked) in queued)
        {
            try
            {
                await locked;
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                // terminated while it waited, as intended
            }

            await connection.DisposeAsync();
        }
    }
}

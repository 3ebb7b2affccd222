using Dapper;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>
/// What a pooler's server sessions carry from one client's transaction to the next: session advisory locks, LISTEN,
/// prepared statements, cursors, settings a SET (not SET LOCAL) left, a role switched to, temporary tables. Each
/// server session of a login is probed from inside a transaction of its own, all of them held open at once, so
/// PgBouncer must hand each probe a different one.
/// </summary>
internal static class PooledSessions
{
    /// <summary>The parameters PgBouncer itself sets per client on every server session it hands out (they are its job, not leaks).</summary>
    private static readonly string[] s_trackedByPooler = ["application_name", "client_encoding", "DateStyle", "TimeZone", "standard_conforming_strings", "IntervalStyle"];

    // The probe's own unnamed portal is a cursor, and its transaction's transaction_* settings show as set by the
    // session: neither is carried over.
    private const string Probe = """
        SELECT pg_catalog.pg_backend_pid() AS Pid,
               (SELECT count(*) FROM pg_catalog.pg_locks l WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'advisory') AS AdvisoryLocks,
               (SELECT count(*) FROM pg_catalog.pg_listening_channels()) AS Listening,
               (SELECT count(*) FROM pg_catalog.pg_prepared_statements) AS PreparedStatements,
               (SELECT count(*) FROM pg_catalog.pg_cursors c WHERE c.name <> '') AS Cursors,
               (SELECT coalesce(pg_catalog.string_agg(s.name || '=' || s.setting, ', ' ORDER BY s.name), '') FROM pg_catalog.pg_settings s
                WHERE s.source = 'session' AND s.name <> ALL (@tracked) AND s.name NOT LIKE 'transaction%') AS Settings,
               current_user = session_user AS OwnRole,
               (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = pg_catalog.pg_my_temp_schema()) AS TempTables
        """;

    /// <summary>
    /// Probes every server session PostgreSQL has open for <paramref name="login"/> (as seen by <paramref name="direct"/>)
    /// through <paramref name="pooledConnectionString"/>, and fails naming each leftover found.
    /// </summary>
    public static async Task AssertCleanAsync(NpgsqlDataSource direct, string pooledConnectionString, string login)
    {
        var ct = TestContext.Current.CancellationToken;
        var serverPids = (await direct.QueryAsync<int>(
            "SELECT pid FROM pg_stat_activity WHERE usename = @login AND backend_type = 'client backend' AND pid <> pg_backend_pid()", new { login })).ToHashSet();
        Assert.NotEmpty(serverPids);

        // Unpooled on the client side: Npgsql's own reset (DISCARD ALL) on reuse would clean what we look for.
        var probe = new NpgsqlConnectionStringBuilder(pooledConnectionString) { Pooling = false, ApplicationName = "session probe" }.ConnectionString;
        var connections = new List<NpgsqlConnection>();
        var transactions = new List<NpgsqlTransaction>();
        var found = new List<SessionState>();
        try
        {
            // As many as the sessions seen: each open transaction holds a server session, so the probes spread over all.
            for (var i = 0; i < serverPids.Count; i++)
            {
                var connection = new NpgsqlConnection(probe);
                connections.Add(connection);
                await connection.OpenAsync(ct);
                transactions.Add(await connection.BeginTransactionAsync(ct));
                found.AddRange(await connection.QueryAsync<SessionState>(Probe, new { tracked = s_trackedByPooler }, transactions[^1]));
            }
        }
        finally
        {
            foreach (var transaction in transactions)
            {
                await transaction.RollbackAsync(ct);
            }

            foreach (var connection in connections)
            {
                await connection.DisposeAsync();
            }
        }

        Assert.Subset(found.Select(s => s.Pid).ToHashSet(), serverPids);
        var leftovers = found.Where(s => s.AdvisoryLocks != 0 || s.Listening != 0 || s.PreparedStatements != 0 || s.Cursors != 0 || s.Settings != "" || !s.OwnRole || s.TempTables != 0)
            .Select(s => s.ToString()).ToList();
        Assert.True(leftovers.Count == 0, $"Left on pooled server sessions:\n{string.Join('\n', leftovers)}");
    }

    private sealed record SessionState(int Pid, long AdvisoryLocks, long Listening, long PreparedStatements, long Cursors, string Settings, bool OwnRole, long TempTables);
}

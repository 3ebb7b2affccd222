using System.Diagnostics;
using System.Globalization;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Hostile;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>
/// An application connected only through PgBouncer 1.18 in <c>pool_mode = transaction</c> (the sidecar connects
/// directly) does everything an application does with mad: creates a prediction table, refreshes it and sees the job
/// finish, watches it and reads the predictions of rows it inserts, CALLs mad.predict, asks mad.predict_async and gets
/// the answer from another transaction (awaited and polled). Twice: with Npgsql's default protocol (extended, unnamed
/// statements) and with psql's simple protocol. Afterwards no server session PgBouncer hands out carries anything
/// over (locks, LISTEN, settings, prepared statements, cursors, role, temporary tables).
/// </summary>
public sealed class PgBouncerApplicationTests(PostgresDatabase database, PgBouncer pgBouncer) : OnlineRequestTests(database), IClassFixture<PgBouncer>
{
    public static TheoryData<string> Clients => new("npgsql", "psql");

    [Theory(Timeout = 180_000)]
    [MemberData(nameof(Clients))]
    public async Task An_application_only_reaching_pgbouncer_refreshes_watches_reads_and_predicts_and_leaves_no_session_state(string client)
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (login, _) = await roles.LoginAsync("app", "IN ROLE mad_admin, mad_user");
        await pgBouncer.AllowAsync(login);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 30);
        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{source} OWNER TO {login}");
        var pooled = pgBouncer.ConnectionString(login, new NpgsqlConnectionStringBuilder(Database.ConnectionString).Database!);
        await using var app = client == "psql" ? (IApplication)new PsqlApplication(pooled) : new NpgsqlApplication(pooled);
        var name = Sql.UniqueName("scores");

        // A prediction table, refreshed: the job runs on the sidecar and the application sees it finish.
        await app.ScalarAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}'::regclass, '{{id}}', '{model}', '{BatchTables.IrisFeatures}')::text");
        var job = await app.ScalarAsync($"SELECT mad.refresh('{name}')::text");
        var state = await Eventually.WaitForAsync(() => app.ScalarAsync($"SELECT state FROM mad.jobs WHERE id = {job}"), s => s != "running", $"job {job} to finish");
        Assert.Equal("done", state);
        Assert.Equal("30 30 0", await app.ScalarAsync(
            $"SELECT count(*) || ' ' || count(p.label) || ' ' || count(p.error) FROM public.{source} s JOIN mad_out.{name} p USING (id)"));

        // Watched: rows the application inserts get their predictions.
        await app.ScalarAsync($"SELECT mad.watch('{name}')::text");
        await app.ScalarAsync($"INSERT INTO public.{source} VALUES (101, 5.1, 3.5, 1.4, 0.2), (102, 6.3, 3.3, 6.0, 2.5) RETURNING 'inserted'");
        var labels = await Eventually.WaitForAsync(
            () => app.ScalarAsync($"SELECT coalesce(string_agg(label::text, ' ' ORDER BY id), '') FROM mad_out.{name} WHERE id > 100"), l => l.Split(' ').Length == 2, "the inserted rows' predictions");
        Assert.Equal("0 2", labels);

        // Online: CALL, and async answered to another transaction, awaited (no LISTEN) and polled.
        Assert.Equal("2", Label(await app.ScalarAsync($"CALL mad.predict('{model}', '{Virginica}', NULL)")));
        var awaited = await app.ScalarAsync($"SELECT mad.predict_async('{model}', '{Versicolor}')::text");
        Assert.Equal("done 1", await app.ScalarAsync($"SELECT status || ' ' || (result->>'label') FROM mad.await_request({awaited})"));
        var polled = await app.ScalarAsync($"SELECT mad.predict_async('{model}', '{Setosa}')::text");
        Assert.Equal("done 0", await Eventually.WaitForAsync(
            () => app.ScalarAsync($"SELECT status || ' ' || coalesce(result->>'label', '') FROM mad.requests WHERE id = {polled}"), s => !s.StartsWith("pending", StringComparison.Ordinal) && !s.StartsWith("running", StringComparison.Ordinal), "the polled answer"));

        await app.ScalarAsync($"SELECT mad.unwatch('{name}')::text");

        await PooledSessions.AssertCleanAsync(Database.DataSource, pooled, login);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_session_probe_sees_a_lock_a_listen_and_a_setting_left_on_a_pooled_session()
    {
        await using var roles = new HostileRoles(Database);
        var (login, _) = await roles.LoginAsync("careless", "IN ROLE mad_user");
        await pgBouncer.AllowAsync(login);
        var pooled = pgBouncer.ConnectionString(login, new NpgsqlConnectionStringBuilder(Database.ConnectionString).Database!);
        await using var app = new NpgsqlApplication(pooled);

        // What an application must not do behind a transaction-mode pooler, and no mad function does (one round
        // trip: one server session).
        await app.ScalarAsync("SELECT pg_advisory_lock(42)::text; LISTEN careless; SET work_mem = '7MB'");

        var leak = await Assert.ThrowsAnyAsync<Exception>(() => PooledSessions.AssertCleanAsync(Database.DataSource, pooled, login));
        Assert.Contains("AdvisoryLocks = 1, Listening = 1", leak.Message, StringComparison.Ordinal);
        Assert.Contains("work_mem=7168", leak.Message, StringComparison.Ordinal);
    }

    [Theory(Timeout = 60_000)]
    [InlineData("explicit Prepare()")]
    [InlineData("Max Auto Prepare")]
    public async Task Named_prepared_statements_break_on_pgbouncer_1_18_in_transaction_mode_when_the_next_transaction_lands_on_another_session(string how)
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (login, _) = await roles.LoginAsync("prepared", "IN ROLE mad_user");
        await pgBouncer.AllowAsync(login);
        var pooled = new NpgsqlConnectionStringBuilder(pgBouncer.ConnectionString(login, new NpgsqlConnectionStringBuilder(Database.ConnectionString).Database!))
        {
            MaxAutoPrepare = how == "Max Auto Prepare" ? 10 : 0,
            AutoPrepareMinUsages = 2,
        };
        await using var connection = new NpgsqlConnection(pooled.ConnectionString);
        await connection.OpenAsync(Ct);
        await using var call = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection) { Parameters = { new() { Value = model }, new() { Value = Setosa } } };
        if (how == "explicit Prepare()")
        {
            await call.PrepareAsync(Ct);
        }

        // Alone, each transaction lands on the server session the last one used (PgBouncer hands out the most recent): it works.
        for (var i = 0; i < 3; i++)
        {
            Assert.Contains("\"label\": 0", (string)(await call.ExecuteScalarAsync(Ct))!, StringComparison.Ordinal);
        }

        Assert.True(call.IsPrepared, "Npgsql prepared the statement");

        // Another client holds that session in a transaction: the next CALL gets another session, which never saw the statement.
        await using var other = new NpgsqlConnection(pgBouncer.ConnectionString(login, new NpgsqlConnectionStringBuilder(Database.ConnectionString).Database!));
        await other.OpenAsync(Ct);
        await using var holding = await other.BeginTransactionAsync(Ct);
        await using (var hold = new NpgsqlCommand("SELECT 1", other, holding))
        {
            await hold.ExecuteScalarAsync(Ct);
        }

        var error = await Assert.ThrowsAsync<PostgresException>(() => call.ExecuteScalarAsync(Ct));
        Assert.Equal(PostgresErrorCodes.InvalidSqlStatementName, error.SqlState); // 26000: prepared statement "_p1" does not exist
    }

    private static string Label(string json) => System.Text.Json.Nodes.JsonNode.Parse(json)!["label"]!.ToString();

    /// <summary>One application: runs a statement through PgBouncer and returns the first column of its first row as text.</summary>
    private interface IApplication : IAsyncDisposable
    {
        Task<string> ScalarAsync(string sql);
    }

    /// <summary>Npgsql as an application configures it for a transaction-mode pooler: its pool, no reset on close (that DISCARD ALL would clean what the probe looks for), no prepared statements.</summary>
    private sealed class NpgsqlApplication(string connectionString) : IApplication
    {
        private readonly NpgsqlDataSource _dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString) { NoResetOnClose = true, MaxAutoPrepare = 0 }.ConnectionString);

        public async Task<string> ScalarAsync(string sql)
        {
            await using var connection = await _dataSource.OpenConnectionAsync(TestContext.Current.CancellationToken);
            await using var command = new NpgsqlCommand(sql, connection);
            return (string)(await command.ExecuteScalarAsync(TestContext.Current.CancellationToken))!;
        }

        public ValueTask DisposeAsync() => _dataSource.DisposeAsync();
    }

    /// <summary><c>psql -c</c>: the simple query protocol, one process (one client connection) per statement.</summary>
    private sealed class PsqlApplication(string connectionString) : IApplication
    {
        private readonly NpgsqlConnectionStringBuilder _target = new(connectionString);
        private readonly string _psql = Path.Combine(ThrowawayCluster.FindBinaries() ?? throw new InvalidOperationException("psql is not installed: `apt-get install postgresql-client`."), "psql");

        public async Task<string> ScalarAsync(string sql)
        {
            var start = new ProcessStartInfo(_psql) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var argument in new[] { "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", _target.Host!, "-p", _target.Port.ToString(CultureInfo.InvariantCulture), "-U", _target.Username!, "-d", _target.Database!, "-c", sql })
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment["PGAPPNAME"] = "app through pgbouncer (psql)";
            using var process = Process.Start(start)!;
            var error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            var output = await process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            await process.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.True(process.ExitCode == 0, $"psql -c \"{sql}\" exited with {process.ExitCode}: {await error}");
            return output.Split('\n')[0].Trim();
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

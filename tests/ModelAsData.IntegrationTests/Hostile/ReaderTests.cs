using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Jobs;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// What a reader may see in the mad.* tables (008_readers_see_their_own.sql): a login holding only mad_user types
/// the SELECTs that used to show it every model blob, the key bounds of every refresh, every outbox's keys, other
/// roles' job errors and requests, and the engine's own details; each is refused (42501) or shows nothing of others,
/// while what the CLI verbs read as that role still works.
/// </summary>
public sealed class ReaderTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task A_mad_user_cannot_read_model_blobs_but_reads_every_other_column_of_a_version()
    {
        var (model, _) = await BatchTables.ReadyModelAsync(Database);
        await using var roles = new HostileRoles(Database);
        var (_, user) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        var (_, admin) = await roles.LoginAsync("operator", "IN ROLE mad_admin");
        var (_, sidecar) = await roles.LoginAsync("engine", "IN ROLE mad_sidecar");

        foreach (var attack in new[] { "SELECT onnx FROM mad.model_versions", "SELECT * FROM mad.model_versions", "SELECT v FROM mad.model_versions v" })
        {
            var error = await user.FailsAsync(attack);
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
            Assert.Equal("permission denied for table model_versions", error.MessageText);
        }

        // What `mad models list / show` read, as that role.
        await using var registry = new PostgresModelRegistry(user);
        Assert.Contains(await registry.ListAsync(Ct), m => m.Model == model && m.LatestReady == 1);
        var version = await registry.ResolveAsync(new(model, null, 1), Ct);
        Assert.Equal(VersionStatus.Ready, version.Status);
        Assert.NotNull(version.Signature);
        var denied = await Assert.ThrowsAsync<ModelAsDataException>(() => registry.LoadBytesAsync(model, 1, Ct));
        Assert.Equal(ErrorCode.PermissionDenied, denied.Code);
        Assert.Contains("needs role mad_admin or mad_sidecar", denied.Message, StringComparison.Ordinal);

        var sha256 = await Database.DataSource.ScalarAsync<string>("SELECT sha256 FROM mad.model_versions WHERE model = @model", new { model });
        foreach (var allowed in new[] { admin, sidecar })
        {
            Assert.Equal(sha256, await allowed.ScalarAsync<string>(
                "SELECT encode(sha256(onnx), 'hex') FROM mad.model_versions WHERE model = @model", new { model }));
        }

        Assert.Equal("ready", await Database.DataSource.ScalarAsync<string>("SELECT status FROM mad.model_versions WHERE model = @model", new { model }));
    }

    [Fact(Timeout = 90_000)]
    public async Task Task_key_bounds_and_other_roles_job_errors_are_not_shown_to_readers()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 400);
        var name = Sql.UniqueName("bounds");
        await BatchTables.CreateAsync(tables, name, source, model);
        long job;
        try
        {
            await BatchTables.SmallTasksAsync(Database.DataSource, rowsPerTask: 100);
            job = await tables.StartRefreshAsync(name, Ct); // no sidecar runs: its tasks stay queued, with their bounds
        }
        finally
        {
            await BatchTables.SmallTasksAsync(Database.DataSource, rowsPerTask: 50_000, maxTasks: 64);
        }

        await Database.DataSource.ExecuteAsync("UPDATE mad.jobs SET error = 'Key (id)=(42) says: secret' WHERE id = @job", new { job });
        await using var roles = new HostileRoles(Database);
        var (login, user) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        var (_, admin) = await roles.LoginAsync("operator", "IN ROLE mad_admin");
        Assert.True(await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.tasks WHERE job_id = @job AND lo IS NOT NULL", new { job }) > 0);

        foreach (var (reader, attack) in new[]
                 {
                     (user, "SELECT lo, hi FROM mad.tasks"), (user, "SELECT * FROM mad.tasks"), (user, "SELECT error FROM mad.tasks"),
                     (admin, "SELECT lo, hi FROM mad.tasks"),
                 })
        {
            var error = await reader.FailsAsync(attack);
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
            Assert.Equal("permission denied for table tasks", error.MessageText);
        }

        Assert.Equal(4L, await user.ScalarAsync<long>("SELECT count(*) FROM mad.tasks WHERE job_id = @job AND state = 'queued'", new { job }));
        Assert.Equal(0L, await user.ScalarAsync<long>("SELECT count(*) FROM mad.jobs WHERE error LIKE '%secret%'"));
        Assert.Equal(1L, await admin.ScalarAsync<long>("SELECT count(*) FROM mad.jobs WHERE id = @job AND error LIKE '%secret%'", new { job }));

        // `mad jobs` and `mad jobs follow` as that role: other roles' jobs are not there; its own are, errors included.
        await using var registry = new PostgresModelRegistry(user);
        var asUser = new PostgresPredictionTables(registry);
        Assert.DoesNotContain(await asUser.ListJobsAsync(50, Ct), j => j.Id == job);
        var missing = await Assert.ThrowsAsync<ModelAsDataException>(() => asUser.GetJobAsync(job, Ct));
        Assert.Equal(ErrorCode.NotFound, missing.Code);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @login WHERE name = @name", new { login, name });
        Assert.Contains("secret", (await asUser.GetJobAsync(job, Ct)).Error, StringComparison.Ordinal);
        Assert.Contains(await asUser.ListJobsAsync(50, Ct), j => j.Id == job);

        Assert.Equal(4L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.tasks WHERE job_id = @job AND state = 'queued'", new { job }));
        await Database.DataSource.ExecuteAsync("UPDATE mad.jobs SET state = 'failed', finished_at = now() WHERE id = @job", new { job });
    }

    [Fact(Timeout = 90_000)]
    public async Task The_outbox_shows_a_tables_keys_only_to_roles_that_may_read_them_in_its_source()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3);
        var name = Sql.UniqueName("outbox");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET sepal_length = sepal_length + 1"); // no sidecar drains them
        await using var roles = new HostileRoles(Database);
        var (login, user) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        var (adminLogin, admin) = await roles.LoginAsync("operator", "IN ROLE mad_admin");
        const string Keys = "SELECT coalesce(string_agg(array_to_string(key, ','), ' ' ORDER BY key[1]::int), '') FROM mad.outbox WHERE prediction_table = @name";

        Assert.Equal("", await user.ScalarAsync<string>(Keys, new { name }));
        Assert.Equal(0L, await user.ScalarAsync<long>("SELECT count(*) FROM (SELECT * FROM mad.outbox) o"));
        Assert.Equal("", await admin.ScalarAsync<string>(Keys, new { name }));

        // May read the key column: sees the keys.
        await Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {login}; GRANT SELECT (id) ON public.{source} TO {login}");
        Assert.Equal("1 2 3", await user.ScalarAsync<string>(Keys, new { name }));

        // Row security on the source would hide rows from it: it sees none of the keys.
        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{source} ENABLE ROW LEVEL SECURITY; CREATE POLICY only_one ON public.{source} FOR SELECT USING (id = 1)");
        Assert.Equal("", await user.ScalarAsync<string>(Keys, new { name }));
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON public.{source} TO {adminLogin}");
        Assert.Equal("", await admin.ScalarAsync<string>(Keys, new { name }));
        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{source} DISABLE ROW LEVEL SECURITY");
        Assert.Equal("1 2 3", await admin.ScalarAsync<string>(Keys, new { name }));

        // The gates are constants of the query, evaluated once, not per outbox row.
        var plan = string.Join("\n", await user.QueryAsync<string>("EXPLAIN SELECT * FROM mad.outbox"));
        Assert.Contains("One-Time Filter: (has_column_privilege(", plan, StringComparison.Ordinal);

        Assert.Equal(3L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_outbox.{name}"));
        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
    }

    [Fact(Timeout = 90_000)]
    public async Task A_mad_user_sees_only_its_own_requests_and_none_of_the_engines_details()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3);
        var name = Sql.UniqueName("errors");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET stream_error = 'Key (id)=(7) is secret' WHERE name = @name", new { name });
        await Database.DataSource.ExecuteAsync("""
            INSERT INTO mad.sidecars (id, host, pid, info) VALUES (@id, 'db-internal-7', 4242, '{"jobs": ["validate"]}');
            INSERT INTO mad.request_workers (sidecar, ticket, backend_pid) VALUES (@id, 99, 4242);
            """, new { id = Sql.UniqueName("engine") });
        await using var roles = new HostileRoles(Database);
        var (_, victim) = await roles.LoginAsync("victim", "IN ROLE mad_user");
        var (_, user) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        var request = await victim.ScalarAsync<long>("SELECT mad.predict_async(@model, '{\"float_input\": [5.1, 3.5, 1.4, 0.2]}')", new { model });

        Assert.Equal(0L, await user.ScalarAsync<long>("SELECT count(*) FROM mad.requests WHERE id = @request", new { request }));
        Assert.Equal(0L, await user.ScalarAsync<long>("SELECT count(*) FROM (SELECT features FROM mad.requests) r"));
        Assert.Equal(1L, await victim.ScalarAsync<long>("SELECT count(*) FROM mad.requests WHERE id = @request AND features ? 'float_input'", new { request }));
        foreach (var (attack, table) in new[]
                 {
                     ("SELECT ticket, backend_pid FROM mad.request_workers", "request_workers"),
                     ("SELECT key FROM mad.stream_during_refresh", "stream_during_refresh"),
                     ("SELECT host, pid, login, info FROM mad.sidecars", "sidecars"),
                     ("SELECT stream_error FROM mad.prediction_tables", "prediction_tables"),
                     ("SELECT * FROM mad.version_validations", "version_validations"),
                 })
        {
            var error = await user.FailsAsync(attack);
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
            Assert.Equal($"permission denied for table {table}", error.MessageText);
        }

        // What the CLI reads as that role still works: whether a sidecar runs, and `mad tables status`.
        Assert.True(await user.ScalarAsync<long>("SELECT count(*) FROM mad.sidecars s WHERE s.stopped_at IS NULL AND s.heartbeat_at > now() - interval '1 minute'") >= 1);
        await using var registry = new PostgresModelRegistry(user);
        Assert.Equal(source, (await new PostgresPredictionTables(registry).GetAsync(name, Ct)).Source.Split('.')[^1]);

        Assert.Equal("pending", await Database.DataSource.ScalarAsync<string>("SELECT status FROM mad.requests WHERE id = @request", new { request }));
        await Database.DataSource.ExecuteAsync("DELETE FROM mad.request_workers WHERE ticket = 99");
    }
}

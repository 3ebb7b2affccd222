using ModelAsData.IntegrationTests.Batch;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Code in a source runs as the binding's owner, never as the schema owner or the sidecar: no definer function reads a
/// source, the sidecar reads each one as its owner (so grants, column privileges and RLS apply at every read), and key
/// columns are of built-in types only.
/// </summary>
public sealed class SourceReadTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task A_function_in_a_bound_view_does_not_run_when_its_owner_calls_refresh()
    {
        await using var roles = new HostileRoles(Database);
        var attack = await BaitAsync(roles);

        var job = await attack.User.ScalarAsync<long>("SELECT mad.refresh(@name)", new { name = attack.Name });

        Assert.True(job > 0);
        Assert.Empty(await SeenAsync(attack));
        Assert.False(await IsSuperuserAsync(attack.Login));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_function_in_a_bound_view_runs_as_the_owner_when_a_sidecar_without_superuser_reads_it()
    {
        await using var roles = new HostileRoles(Database);
        var attack = await BaitAsync(roles);
        await using var sidecar = await RunningSidecar.StartAsSidecarLoginAsync(Database);

        var job = await BatchTables.WaitAsync(attack.Tables, await attack.User.ScalarAsync<long>("SELECT mad.refresh(@name)", new { name = attack.Name }));

        Assert.Equal("done", job.State);
        Assert.Equal(3, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{attack.Name}"));
        Assert.Equal([attack.Login], await SeenAsync(attack));
        Assert.False(await IsSuperuserAsync(attack.Login));
        Assert.False(await IsSuperuserAsync(sidecar.Login!));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_sidecar_without_superuser_never_becomes_the_superuser_that_owns_a_binding()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        var name = Sql.UniqueName("super");
        await BatchTables.CreateAsync(tables, name, source, model); // by the fixture's superuser: it owns the binding
        await using var sidecar = await RunningSidecar.StartAsSidecarLoginAsync(Database);

        var id = await tables.StartRefreshAsync(name, Ct);
        var job = await Eventually.WaitForAsync(() => tables.GetJobAsync(id), j => j.IsFinished, "the refresh to end");

        Assert.Equal("failed", job.State);
        Assert.Contains("a superuser (or a member of one): the sidecar never reads as a superuser", job.Error, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = 'mad_reader'::regrole AND r.rolsuper"));
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"));
    }

    [Fact(Timeout = 90_000)]
    public async Task The_sidecar_may_act_as_an_owner_only_while_it_owns_a_binding()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        await using var roles = new HostileRoles(Database);
        var owner = await roles.GroupAsync("analyst", "IN ROLE mad_user");
        var name = Sql.UniqueName("held");
        await BatchTables.CreateAsync(tables, name, source, model);
        const string Member = "SELECT count(*) FROM pg_auth_members WHERE member = 'mad_reader'::regrole AND roleid = @owner::regrole";

        await HandOverAsync(name, owner);
        var whileOwned = await Database.DataSource.ScalarAsync<long>(Member, new { owner });
        await Database.DataSource.ExecuteAsync($"DROP TABLE mad_out.{name}; DELETE FROM mad.prediction_tables WHERE name = @name", new { name });

        Assert.Equal(1L, whileOwned);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>(Member, new { owner }));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_key_of_a_domain_type_is_refused_when_bound_while_watched_and_when_changed_to_one_later()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        await using var roles = new HostileRoles(Database);
        var (attacker, user) = await roles.LoginAsync("attacker", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT USAGE, CREATE ON SCHEMA public TO {attacker}");
        var source = Sql.UniqueName("keyed");
        await user.ExecuteAsync($"""
            CREATE TABLE public.{source}_seen (who text PRIMARY KEY);
            GRANT SELECT, INSERT ON public.{source}_seen TO PUBLIC;
            CREATE FUNCTION public.{source}_check(bigint) RETURNS boolean LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO public.{source}_seen VALUES (current_user) ON CONFLICT DO NOTHING;
              RETURN true;
            END $$;
            CREATE DOMAIN public.{source}_key AS bigint CHECK (public.{source}_check(VALUE));
            CREATE TABLE public.{source} (id public.{source}_key PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real);
            CREATE TABLE public.{source}_plain (id bigint PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real);
            INSERT INTO public.{source}_plain VALUES (1, 5.1, 3.5, 1.4, 0.2);
            GRANT SELECT ON public.{source}, public.{source}_plain TO PUBLIC;
            TRUNCATE public.{source}_seen;
            """);
        var name = Sql.UniqueName("domain");

        var bound = await Database.DataSource.FailsAsync(
            $"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}', '{BatchTables.IrisFeatures}')");

        Assert.Equal(PostgresErrorCodes.InvalidParameterValue, bound.SqlState);
        Assert.Contains($"Key column id of public.{source} has type public.{source}_key, which is not a built-in key type", bound.MessageText, StringComparison.Ordinal);
        Assert.Contains("bigint", bound.Hint, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_tables WHERE name = @name", new { name }));

        // Bound on a plain key, whose type the attacker (the table's owner) changes afterwards: not while it is
        // watched (the capture triggers copy keys as the schema owner), and a refresh or watch refuses it after.
        await BatchTables.CreateAsync(tables, name, $"{source}_plain", model);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        var altered = await user.FailsAsync($"ALTER TABLE public.{source}_plain ALTER COLUMN id TYPE public.{source}_key");
        Assert.Equal(PostgresErrorCodes.FeatureNotSupported, altered.SqlState);
        Assert.Contains("cannot alter type of a column used in a trigger definition", altered.MessageText, StringComparison.Ordinal);
        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
        await user.ExecuteAsync($"ALTER TABLE public.{source}_plain ALTER COLUMN id TYPE public.{source}_key; TRUNCATE public.{source}_seen");
        var refresh = await Database.DataSource.FailsAsync("SELECT mad.refresh(@name)", new { name });
        var watch = await Database.DataSource.FailsAsync("SELECT mad.watch(@name)", new { name });

        foreach (var error in new[] { refresh, watch })
        {
            Assert.Equal(PostgresErrorCodes.InvalidParameterValue, error.SqlState);
            Assert.Contains("which is not a built-in key type", error.MessageText, StringComparison.Ordinal);
        }

        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.jobs WHERE prediction_table = @name", new { name }));
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM public.{source}_seen"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_prediction_table_holds_only_the_rows_row_level_security_lets_its_owner_see()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        await using var roles = new HostileRoles(Database);
        var owner = await roles.GroupAsync("analyst", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"""
            GRANT USAGE ON SCHEMA public TO {owner};
            GRANT SELECT ON public.{source} TO {owner};
            ALTER TABLE public.{source} ENABLE ROW LEVEL SECURITY;
            CREATE POLICY first_two ON public.{source} FOR SELECT TO {owner} USING (id <= 2);
            """);
        var name = Sql.UniqueName("rls");
        await BatchTables.CreateAsync(tables, name, source, model);
        await HandOverAsync(name, owner);
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);

        var job = await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct));

        Assert.Equal("done", job.State);
        Assert.Equal(2, job.RowsTotal);
        Assert.Equal([1L, 2L], await Database.DataSource.QueryAsync<long>($"SELECT id FROM mad_out.{name} ORDER BY id"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_column_privilege_revoked_from_the_owner_fails_its_refresh_with_the_reason()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        await using var roles = new HostileRoles(Database);
        var owner = await roles.GroupAsync("analyst", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {owner}; GRANT SELECT ON public.{source} TO {owner}");
        var name = Sql.UniqueName("columns");
        await BatchTables.CreateAsync(tables, name, source, model);
        await HandOverAsync(name, owner);
        await Database.DataSource.ExecuteAsync($"""
            REVOKE SELECT ON public.{source} FROM {owner};
            GRANT SELECT (id, sepal_length, sepal_width, petal_length) ON public.{source} TO {owner};
            """);
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);

        var id = await tables.StartRefreshAsync(name, Ct);
        var job = await Eventually.WaitForAsync(() => tables.GetJobAsync(id), j => j.IsFinished, "the refresh to end");

        Assert.Equal("failed", job.State);
        Assert.Contains($"permission denied for table {source}", job.Error, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_SELECT_revoked_while_streaming_stops_that_table_with_the_reason_and_the_others_flow()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        await using var roles = new HostileRoles(Database);
        var owner = await roles.GroupAsync("analyst", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {owner}");
        var streams = new List<(string Source, string Name)>();
        foreach (var prefix in new[] { "revoked", "kept" })
        {
            var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 0);
            var name = Sql.UniqueName(prefix);
            await Database.DataSource.ExecuteAsync($"GRANT SELECT ON public.{source} TO {owner}");
            await BatchTables.CreateAsync(tables, name, source, model);
            await HandOverAsync(name, owner);
            await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
            streams.Add((source, name));
        }

        var (revokedSource, revoked) = streams[0];
        var (keptSource, kept) = streams[1];
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{revokedSource} VALUES (1, 5.1, 3.5, 1.4, 0.2); INSERT INTO public.{keptSource} VALUES (1, 5.1, 3.5, 1.4, 0.2)");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{revoked}", 1);
        await WaitForAsync($"SELECT count(*) FROM mad_out.{kept}", 1);

        await Database.DataSource.ExecuteAsync($"REVOKE SELECT ON public.{revokedSource} FROM {owner}");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{revokedSource} VALUES (2, 6.9, 3.1, 5.4, 2.1); INSERT INTO public.{keptSource} VALUES (2, 6.9, 3.1, 5.4, 2.1)");

        await WaitForAsync($"SELECT count(*) FROM mad_out.{kept}", 2);
        var error = await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@revoked)", new { revoked }),
            e => e is not null, "the revoked table's error");
        Assert.Contains($"permission denied for table {revokedSource}", error, StringComparison.Ordinal);
        Assert.Equal(1L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{revoked}"));
        Assert.Equal(1L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_outbox.{revoked}"));
        Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@kept)", new { kept }));
    }

    /// <summary>
    /// The attack: a mad_user with CREATE on public writes a function that records who runs it and makes itself a
    /// superuser when it can, and a view over its table that calls it; an administrator binds the view and hands the
    /// prediction table to the attacker, who refreshes it.
    /// </summary>
    private async Task<Bait> BaitAsync(HostileRoles roles)
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var (attacker, user) = await roles.LoginAsync("attacker", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT USAGE, CREATE ON SCHEMA public TO {attacker}");
        var prefix = Sql.UniqueName("bait");
        await user.ExecuteAsync($"""
            CREATE TABLE public.{prefix}_seen (who text PRIMARY KEY);
            GRANT SELECT, INSERT ON public.{prefix}_seen TO PUBLIC;
            CREATE TABLE public.{prefix}_rows (id bigint PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real);
            INSERT INTO public.{prefix}_rows VALUES (1, 5.1, 3.5, 1.4, 0.2), (2, 6.9, 3.1, 5.4, 2.1), (3, 5.9, 3.0, 4.2, 1.5);
            CREATE FUNCTION public.{prefix}_pwn() RETURNS boolean LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO public.{prefix}_seen VALUES (current_user) ON CONFLICT DO NOTHING;
              BEGIN
                ALTER ROLE {attacker} SUPERUSER;
              EXCEPTION WHEN insufficient_privilege THEN
                NULL;
              END;
              RETURN true;
            END $$;
            CREATE VIEW public.{prefix} AS SELECT * FROM public.{prefix}_rows WHERE public.{prefix}_pwn();
            GRANT SELECT ON public.{prefix} TO PUBLIC;
            """);
        var name = Sql.UniqueName("bait");
        await BatchTables.CreateAsync(tables, name, prefix, model);
        await HandOverAsync(name, attacker);
        return new Bait(attacker, user, prefix, name, tables);
    }

    private Task HandOverAsync(string name, string owner) =>
        Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @owner WHERE name = @name", new { owner, name });

    private async Task<IReadOnlyList<string>> SeenAsync(Bait attack) =>
        await Database.DataSource.QueryAsync<string>($"SELECT who FROM public.{attack.Prefix}_seen ORDER BY who");

    private Task<bool> IsSuperuserAsync(string role) =>
        Database.DataSource.ScalarAsync<bool>("SELECT rolsuper FROM pg_roles WHERE rolname = @role", new { role });

    private Task<long> WaitForAsync(string sql, long expected) =>
        Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>(sql), n => n == expected, $"{sql} = {expected}");

    private sealed record Bait(string Login, NpgsqlDataSource User, string Prefix, string Name, ModelAsData.Postgres.Jobs.PostgresPredictionTables Tables);
}

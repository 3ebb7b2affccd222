using ModelAsData.IntegrationTests.Batch;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// The sidecar reads each source as its binding's owner (SET ROLE through mad_reader), so an owner that can make
/// roles, skip row security, replicate, or owns mad's objects would hand those powers to every sidecar login. Such an
/// owner is refused when a binding is created or handed to it, never granted to mad_reader, and refused again at read
/// time when it gains such a power later.
/// </summary>
public sealed class ReaderOwnerTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const string Member = "SELECT count(*) FROM pg_auth_members WHERE member = 'mad_reader'::regrole AND roleid = @owner::regrole";

    [Theory(Timeout = 90_000)]
    [InlineData("CREATEROLE")]
    [InlineData("BYPASSRLS")]
    [InlineData("REPLICATION")]
    [InlineData("a member of a CREATEROLE role")]
    public async Task A_sidecar_login_never_becomes_an_owner_that_can_make_roles_or_skip_row_security(string options)
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3);
        await using var roles = new HostileRoles(Database);
        var creator = await roles.GroupAsync("creator", "CREATEROLE");
        var owner = await roles.GroupAsync("owner", options.StartsWith("a member", StringComparison.Ordinal) ? $"IN ROLE mad_user, {creator}" : $"{options} IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON public.{source} TO {owner}");
        var (login, sidecar) = await roles.LoginAsync("sidecar", "IN ROLE mad_sidecar");
        var name = Sql.UniqueName("powerful");
        await BatchTables.CreateAsync(tables, name, source, model);
        var evil = Sql.UniqueName("evil");

        var handedOver = await Database.DataSource.FailsAsync("UPDATE mad.prediction_tables SET owner = @owner WHERE name = @name", new { owner, name });
        var attack = await sidecar.FailsAsync($"SET ROLE {owner}; CREATE ROLE {evil}; GRANT mad_admin TO {login}");

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, handedOver.SqlState);
        Assert.Contains($"Prediction table '{name}' may not belong to role {owner}", handedOver.MessageText, StringComparison.Ordinal);
        Assert.Contains("plain role that has SELECT on", handedOver.Hint, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, attack.SqlState);
        Assert.Contains($"permission denied to set role \"{owner}\"", attack.MessageText, StringComparison.Ordinal);
        Assert.NotEqual(owner, await Database.DataSource.ScalarAsync<string>("SELECT owner FROM mad.prediction_tables WHERE name = @name", new { name }));
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>(Member, new { owner }));
        Assert.False(await Database.DataSource.ScalarAsync<bool>("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = @evil)", new { evil }));
        Assert.False(await Database.DataSource.ScalarAsync<bool>("SELECT pg_has_role(@login, 'mad_admin', 'MEMBER')", new { login }));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_createrole_login_cannot_create_a_prediction_table_the_sidecar_would_read_as_it()
    {
        var (model, _) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3);
        await using var roles = new HostileRoles(Database);
        var (installer, asInstaller) = await roles.LoginAsync("installer", "CREATEROLE IN ROLE mad_admin");
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON public.{source} TO {installer}");
        var name = Sql.UniqueName("installers");

        var created = await asInstaller.FailsAsync(
            $"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}', '{BatchTables.IrisFeatures}')");

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, created.SqlState);
        Assert.Contains($"may not belong to role {installer}: it has CREATEROLE", created.MessageText, StringComparison.Ordinal);
        Assert.Contains($"plain role that has SELECT on public.{source}", created.Hint, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_tables WHERE name = @name", new { name }));
        Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT to_regclass(@table)::text", new { table = $"mad_out.{name}" }));
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>(Member, new { owner = installer }));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_owner_that_gains_createrole_after_binding_is_refused_at_read_time_and_revoked_at_its_next_refresh()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3);
        await using var roles = new HostileRoles(Database);
        var owner = await roles.GroupAsync("owner", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON public.{source} TO {owner}");
        var (_, sidecar) = await roles.LoginAsync("sidecar", "IN ROLE mad_sidecar");
        var name = Sql.UniqueName("later");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @owner WHERE name = @name", new { owner, name });
        Assert.Equal(owner, await sidecar.ScalarAsync<string>("SELECT mad.read_role(@name)", new { name }));

        await Database.DataSource.ExecuteAsync($"ALTER ROLE {owner} CREATEROLE");
        var read = await sidecar.FailsAsync("SELECT mad.read_role(@name)", new { name });
        var stillMember = await Database.DataSource.ScalarAsync<long>(Member, new { owner });
        await Database.DataSource.ScalarAsync<long>("SELECT mad.refresh(@name)", new { name });

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, read.SqlState);
        Assert.Contains($"may not belong to role {owner}: it has CREATEROLE", read.MessageText, StringComparison.Ordinal);
        Assert.Equal(1L, stillMember); // ALTER ROLE fires no trigger: the grant goes with the next refresh
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>(Member, new { owner }));
        var attack = await sidecar.FailsAsync($"SET ROLE {owner}");
        Assert.Contains($"permission denied to set role \"{owner}\"", attack.MessageText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_sidecars_heartbeat_revokes_an_owner_that_gained_createrole_so_set_role_to_it_fails()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3);
        await using var roles = new HostileRoles(Database);
        var owner = await roles.GroupAsync("owner", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON public.{source} TO {owner}");
        var (_, sidecar) = await roles.LoginAsync("sidecar", "IN ROLE mad_sidecar");
        var name = Sql.UniqueName("beat");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @owner WHERE name = @name", new { owner, name });
        await Database.DataSource.ExecuteAsync($"ALTER ROLE {owner} CREATEROLE");
        Assert.Equal(1L, await Database.DataSource.ScalarAsync<long>(Member, new { owner })); // ALTER ROLE fires no trigger

        // What any running sidecar sends every HeartbeatInterval (SidecarSql.Heartbeat); then the attacker's switch.
        await sidecar.ExecuteAsync("SELECT mad.sidecar_heartbeat(@id)", new { id = Sql.UniqueName("sidecar") });
        var attack = await sidecar.FailsAsync($"SET ROLE {owner}; CREATE ROLE {owner}_evil");

        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>(Member, new { owner }));
        Assert.Contains($"permission denied to set role \"{owner}\"", attack.MessageText, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM pg_roles WHERE rolname = @evil", new { evil = owner + "_evil" }));
    }
}

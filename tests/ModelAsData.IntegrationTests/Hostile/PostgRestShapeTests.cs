using ModelAsData.IntegrationTests.Postgres;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// PostgREST and Supabase log in as a NOINHERIT `authenticator` and SET ROLE to the request's role: a call is judged
/// by the role it switched to, never by the login (which may hold more).
/// </summary>
public sealed class PostgRestShapeTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task A_web_user_behind_an_authenticator_cannot_move_an_alias()
    {
        var model = await TwoReadyVersionsAsync();
        await using var roles = new HostileRoles(Database);
        var (webAnon, authenticator) = await WebAnonBehindAnAuthenticatorAsync(roles);

        var error = await authenticator.FailsAsync($"SET ROLE {webAnon}; SELECT mad.set_alias(@model, 'production', 2)", new { model });

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
        Assert.Contains("permission denied for function set_alias", error.MessageText, StringComparison.Ordinal);
        await AssertAliasUnmovedAsync(model);
    }

    [Fact(Timeout = 90_000)]
    public async Task An_authenticator_that_is_also_mad_admin_cannot_move_an_alias_after_SET_ROLE_web_anon()
    {
        var model = await TwoReadyVersionsAsync();
        await using var roles = new HostileRoles(Database);
        var (webAnon, authenticator) = await WebAnonBehindAnAuthenticatorAsync(roles, alsoIn: ", mad_admin");

        var moved = await authenticator.FailsAsync($"SET ROLE {webAnon}; SELECT mad.set_alias(@model, 'production', 2)", new { model });
        var rolledBack = await authenticator.FailsAsync($"SET ROLE {webAnon}; SELECT mad.rollback_alias(@model, 'production')", new { model });
        var pushed = await authenticator.FailsAsync($"SET ROLE {webAnon}; SELECT mad.push_model(@model, '\\x01')", new { model });

        foreach (var (error, function) in new[] { (moved, "set_alias"), (rolledBack, "rollback_alias"), (pushed, "push_model") })
        {
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
            Assert.Contains($"permission denied for function {function}", error.MessageText, StringComparison.Ordinal);
        }

        await AssertAliasUnmovedAsync(model);
        Assert.Equal(2, await Database.DataSource.ScalarAsync<int>("SELECT last_version FROM mad.models WHERE name = @model", new { model }));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_login_that_SET_ROLEs_to_an_admin_role_is_recorded_as_that_role()
    {
        var model = await TwoReadyVersionsAsync();
        await using var roles = new HostileRoles(Database);
        var operators = await roles.GroupAsync("operators", "IN ROLE mad_admin");
        var (login, source) = await roles.LoginAsync("authenticator", $"NOINHERIT IN ROLE {operators}");

        // Without SET ROLE the NOINHERIT login has no rights of its own.
        var bare = await source.FailsAsync("SELECT mad.set_alias(@model, 'production', 2)", new { model });
        await source.ExecuteAsync($"SET ROLE {operators}; SELECT mad.set_alias(@model, 'production', 2)", new { model });

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, bare.SqlState);
        var movedBy = await Database.DataSource.QueryAsync<(string MovedBy, string UpdatedBy)>(
            "SELECT h.moved_by, a.updated_by FROM mad.alias_history h JOIN mad.aliases a USING (model, alias) WHERE h.model = @model ORDER BY h.id DESC LIMIT 1",
            new { model });
        Assert.Equal((operators, operators), movedBy.Single());
        Assert.NotEqual(login, movedBy.Single().MovedBy);
    }

    /// <summary>
    /// PostgREST's shape: a web_anon group in mad_user and a NOINHERIT authenticator login in it (and in
    /// <paramref name="alsoIn"/>), which has no rights until it SETs ROLE.
    /// </summary>
    private static async Task<(string WebAnon, NpgsqlDataSource Authenticator)> WebAnonBehindAnAuthenticatorAsync(HostileRoles roles, string alsoIn = "")
    {
        var webAnon = await roles.GroupAsync("web_anon", "IN ROLE mad_user");
        var (_, authenticator) = await roles.LoginAsync("authenticator", $"NOINHERIT IN ROLE {webAnon}{alsoIn}");
        return (webAnon, authenticator);
    }

    private async Task<string> TwoReadyVersionsAsync()
    {
        var model = Sql.UniqueName("churn");
        var admin = new PostgresModelRegistry(Database.DataSource);
        await admin.PushReadyAsync(model);
        await admin.PushReadyAsync(model);
        await admin.SetAliasAsync(model, "production", 1, cancellationToken: Ct);
        return model;
    }

    private async Task AssertAliasUnmovedAsync(string model)
    {
        Assert.Equal(1, await Database.DataSource.ScalarAsync<int>("SELECT version FROM mad.aliases WHERE model = @model AND alias = 'production'", new { model }));
        Assert.Equal(1L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.alias_history WHERE model = @model", new { model }));
    }
}

using ModelAsData.IntegrationTests.Batch;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// A prediction table's lifecycle needs more than SELECT on its source: creating one is for mad_admin, watching needs
/// the TRIGGER privilege, and refresh / watch / unwatch need the binding's owner (or mad_admin).
/// </summary>
public sealed class LifecycleTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task A_mad_user_cannot_create_a_prediction_table()
    {
        var (model, _) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        await using var roles = new HostileRoles(Database);
        var (login, user) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        await GrantSelectAsync(source, login);
        var name = Sql.UniqueName("mine");

        var error = await user.FailsAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}')");

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
        Assert.Contains("permission denied for function create_prediction_table", error.MessageText, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_tables WHERE name = @name", new { name }));
        Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT to_regclass(@t)::text", new { t = $"mad_out.{name}" }));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_owner_with_only_SELECT_on_the_source_cannot_watch_it()
    {
        var (source, name) = await TableAsync();
        await using var roles = new HostileRoles(Database);
        var (login, user) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        await GrantSelectAsync(source, login);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @login WHERE name = @name", new { login, name });

        var error = await user.FailsAsync("SELECT mad.watch(@name)", new { name });

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
        Assert.Contains($"needs the TRIGGER privilege on public.{source}", error.MessageText, StringComparison.Ordinal);
        Assert.Equal(0L, await TriggersAsync(source));
        Assert.False(await Database.DataSource.ScalarAsync<bool>("SELECT watched FROM mad.prediction_tables WHERE name = @name", new { name }));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_user_who_may_SELECT_and_TRIGGER_the_source_cannot_watch_refresh_or_unwatch_another_roles_table()
    {
        var (source, name) = await TableAsync();
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        var jobs = await JobsAsync(name);
        await using var roles = new HostileRoles(Database);
        var (login, user) = await roles.LoginAsync("intruder", "IN ROLE mad_user");
        await GrantSelectAsync(source, login);
        await Database.DataSource.ExecuteAsync($"GRANT TRIGGER ON public.{source} TO {login}");

        var refresh = await user.FailsAsync("SELECT mad.refresh(@name)", new { name });
        var unwatch = await user.FailsAsync("SELECT mad.unwatch(@name)", new { name });

        foreach (var (error, action) in new[] { (refresh, "refresh"), (unwatch, "unwatch") })
        {
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
            Assert.Contains($"permission denied to {action} {name}: prediction table '{name}' belongs to role postgres", error.MessageText, StringComparison.Ordinal);
            Assert.Contains("needs to be that role or mad_admin", error.MessageText, StringComparison.Ordinal);
        }

        Assert.Equal(jobs, await JobsAsync(name));
        Assert.Equal(5L, await TriggersAsync(source)); // four capture triggers and the key-type guard
        Assert.True(await Database.DataSource.ScalarAsync<bool>("SELECT watched FROM mad.prediction_tables WHERE name = @name", new { name }));

        // And the other way round: it cannot watch an unwatched table of another role either.
        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
        var watch = await user.FailsAsync("SELECT mad.watch(@name)", new { name });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, watch.SqlState);
        Assert.Contains("belongs to role postgres", watch.MessageText, StringComparison.Ordinal);
        Assert.Equal(0L, await TriggersAsync(source));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_table_belongs_to_the_effective_role_that_created_it()
    {
        var (model, _) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        await using var roles = new HostileRoles(Database);
        var operators = await roles.GroupAsync("operators", "IN ROLE mad_admin");
        var (_, login) = await roles.LoginAsync("authenticator", $"NOINHERIT IN ROLE {operators}");
        await GrantSelectAsync(source, operators);
        var name = Sql.UniqueName("owned");

        await login.ExecuteAsync($"SET ROLE {operators}; SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}', '{BatchTables.IrisFeatures}')");

        var recorded = await Database.DataSource.QueryAsync<(string Owner, string CreatedBy)>(
            "SELECT owner, created_by FROM mad.prediction_tables WHERE name = @name", new { name });
        Assert.Equal((operators, operators), recorded.Single());
        await Database.DataSource.ExecuteAsync($"DROP TABLE mad_out.{name}; DELETE FROM mad.prediction_tables WHERE name = @name", new { name });
    }

    private async Task<(string Source, string Name)> TableAsync()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        var name = Sql.UniqueName("p");
        await BatchTables.CreateAsync(tables, name, source, model);
        return (source, name);
    }

    private Task GrantSelectAsync(string source, string role) =>
        Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON public.{source} TO {role}");

    private Task<long> TriggersAsync(string source) =>
        Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM pg_trigger WHERE tgrelid = @t::regclass AND NOT tgisinternal", new { t = $"public.{source}" });

    private Task<long> JobsAsync(string name) =>
        Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.jobs WHERE prediction_table = @name", new { name });
}

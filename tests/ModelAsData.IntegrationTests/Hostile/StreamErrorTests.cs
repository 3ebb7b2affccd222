using ModelAsData.Postgres.Streaming;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// A watched table's stream error may quote its source's values (a failed batch's key, a constraint's detail), so 008
/// revokes prediction_tables.stream_error from mad_user; mad.stream_lag, a definer function every caller may run, must
/// not answer it around that revoke: only the binding's owner (or a member of it) and mad_admin read it.
/// </summary>
public sealed class StreamErrorTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const string Secret = "Key (id)=(7) violates check constraint: salary 182000 of alice";

    [Fact(Timeout = 90_000)]
    public async Task Another_mad_user_gets_the_lag_without_the_error_and_the_owner_and_an_admin_get_the_error()
    {
        var (_, name) = await WatchedAsync(Database, rows: 0);
        await using var roles = new HostileRoles(Database);
        var (owner, ownerSource) = await roles.LoginAsync("owner", "IN ROLE mad_user");
        var (_, intruder) = await roles.LoginAsync("intruder", "IN ROLE mad_user");
        var (_, admin) = await roles.LoginAsync("admin", "IN ROLE mad_admin");
        var team = await roles.GroupAsync("team");
        var (_, member) = await roles.LoginAsync("member", $"IN ROLE mad_user, {team}");
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @owner, stream_error = @Secret, stream_error_at = now() WHERE name = @name",
            new { owner, Secret, name });

        // The attack, as typed: the column is revoked, so ask the definer function for it, one table or every table.
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await intruder.FailsAsync("SELECT stream_error FROM mad.prediction_tables WHERE name = @name", new { name })).SqlState);
        var told = await intruder.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@name)", new { name });
        var listed = await intruder.QueryAsync<string?>("SELECT l.error FROM mad.prediction_tables p CROSS JOIN LATERAL mad.stream_lag(p.name) l WHERE p.name = @name", new { name });

        Assert.Equal($"The last streaming batch failed; only the table's owner (role {owner}) and mad_admin see why.", told);
        Assert.Equal(told, Assert.Single(listed));
        Assert.DoesNotContain(listed, e => e!.Contains("alice", StringComparison.Ordinal));

        // `mad tables status` still works for it, and tells the rest: keys waiting, whether it is watched.
        await using (var registry = new PostgresModelRegistry(intruder))
        {
            var lag = await new PostgresStreaming(registry).GetLagAsync(name, Ct);
            Assert.True(lag.Watched);
            Assert.Equal(told, lag.Error);
            Assert.Contains(await new PostgresStreaming(registry).ListLagsAsync(Ct), l => l.Name == name);
        }

        // The owner (its own login, and a table handed to a group: a member of it) and mad_admin read the error whole.
        await using (var registry = new PostgresModelRegistry(ownerSource))
        {
            Assert.Equal(Secret, (await new PostgresStreaming(registry).GetLagAsync(name, Ct)).Error);
        }

        Assert.Equal(Secret, await admin.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@name)", new { name }));
        Assert.NotEqual(Secret, await member.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@name)", new { name }));
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @team WHERE name = @name", new { team, name });
        Assert.Equal(Secret, await member.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@name)", new { name }));

        // No error: no text for anyone. And the reads changed nothing.
        Assert.Equal(Secret, await Database.DataSource.ScalarAsync<string>("SELECT stream_error FROM mad.prediction_tables WHERE name = @name", new { name }));
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET stream_error = NULL, stream_error_at = NULL WHERE name = @name", new { name });
        Assert.Null(await intruder.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@name)", new { name }));
        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
    }
}

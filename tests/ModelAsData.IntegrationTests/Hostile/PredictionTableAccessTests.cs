using ModelAsData.IntegrationTests.Batch;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// A prediction table belongs to its owner: other mad_users cannot read it, the owner grants it on like any table and
/// its grants (and REVOKEs) survive a refresh's swap; a reader holding a lock cannot stall the swap forever.
/// </summary>
public sealed class PredictionTableAccessTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task Another_mad_user_cannot_read_a_prediction_table_and_the_owners_grant_survives_a_refresh()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        await using var roles = new HostileRoles(Database);
        var (owner, ownerSession) = await roles.LoginAsync("owner", "IN ROLE mad_user");
        var (friend, friendSession) = await roles.LoginAsync("friend", "IN ROLE mad_user");
        var (_, snoop) = await roles.LoginAsync("snoop", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {owner}; GRANT SELECT ON public.{source} TO {owner}");
        var name = Sql.UniqueName("owned");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @owner WHERE name = @name", new { owner, name });
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        Assert.Equal("done", (await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct))).State);

        var denied = await snoop.FailsAsync($"SELECT count(*) FROM mad_out.{name}");

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        Assert.Contains($"permission denied for table {name}", denied.MessageText, StringComparison.Ordinal);
        Assert.Equal(5L, await ownerSession.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"));

        await ownerSession.ExecuteAsync($"GRANT SELECT ON mad_out.{name} TO {friend}");
        Assert.Equal("done", (await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct))).State);

        Assert.Equal(5L, await friendSession.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await snoop.FailsAsync($"SELECT count(*) FROM mad_out.{name}")).SqlState);
        // The grant is still the owner's own, so the owner's REVOKE takes it back.
        await ownerSession.ExecuteAsync($"REVOKE SELECT ON mad_out.{name} FROM {friend}");
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await friendSession.FailsAsync($"SELECT count(*) FROM mad_out.{name}")).SqlState);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_reader_holding_a_lock_on_the_table_fails_the_swap_after_the_timeout_with_a_message_naming_it()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        var name = Sql.UniqueName("locked");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '300' WHERE name = 'swap_lock_timeout_ms'");
        await using var reader = await Database.DataSource.OpenConnectionAsync(Ct);
        await using var reading = await reader.BeginTransactionAsync(Ct);
        await using (var select = new NpgsqlCommand($"SELECT count(*) FROM mad_out.{name}", reader, reading))
        {
            await select.ExecuteScalarAsync(Ct);
        }

        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var id = await tables.StartRefreshAsync(name, Ct);
        var job = await Eventually.WaitForAsync(() => tables.GetJobAsync(id), j => j.IsFinished, "the refresh to end");

        Assert.Equal("failed", job.State);
        Assert.Contains($"mad_out.{name} could not be swapped in: other sessions (pid {reader.ProcessID})", job.Error, StringComparison.Ordinal);
        Assert.Contains("swap_lock_timeout_ms (300 ms)", job.Error, StringComparison.Ordinal);
        Assert.Contains($"SELECT mad.refresh('{name}')", job.Error, StringComparison.Ordinal);
        await reading.RollbackAsync(Ct);
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '5000' WHERE name = 'swap_lock_timeout_ms'");
    }
}

using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Migrations;
using ModelAsData.Sidecar;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Advisory-lock keys are public (001_schemas_and_roles.sql) and pg_advisory_lock needs no privilege: a login with no
/// mad role at all holds the keys the sidecar and the migrator wait on. They must fail that one step clearly (naming
/// the holder), keep doing the rest, and recover when the lock is let go.
/// </summary>
public sealed class AdvisoryLockTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task A_held_stream_lock_stalls_one_step_not_the_sidecar_and_names_who_holds_it()
    {
        await using var roles = new HostileRoles(database);
        var (attacker, attackerSource) = await roles.LoginAsync("mallory");
        var (model, tables) = await BatchTables.ReadyModelAsync(database);
        var (blockedSource, blocked) = await WatchedAsync(database, rows: 0, model: model);
        var (freeSource, free) = await WatchedAsync(database, rows: 0, model: model);
        var refreshed = await BatchTables.CreateFlowersAsync(database.DataSource, 20);
        var batch = Sql.UniqueName("locked_batch");
        await BatchTables.CreateAsync(tables, batch, refreshed, model);

        // The attacker, as typed: the stream_notify key from the table in 001, and the key a drain locks for row 1 of
        // the blocked table (hashtextextended(table || ':' || key as JSON text, 0), in 006's stream_claim).
        await using var attack = await attackerSource.OpenConnectionAsync(Ct);
        await using (var hold = new NpgsqlCommand($"""SELECT pg_advisory_lock(1296122958, 0), pg_advisory_lock(hashtextextended('{blocked}:["1"]', 0))""", attack))
        {
            await hold.ExecuteNonQueryAsync(Ct);
        }

        var options = new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5), SidecarId = Sql.UniqueName("locked"), LockTimeout = TimeSpan.FromMilliseconds(500) };
        await using var sidecar = await RunningSidecar.StartAsync(database.ConnectionString, options);
        await database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{blockedSource} VALUES (1, {Setosa}), (2, {Setosa});
            INSERT INTO public.{freeSource} VALUES (1, {Setosa});
            """);

        // The other table streams and a refresh runs, although the sidecar could not switch the writers' NOTIFY mode.
        await WaitForAsync(database, $"SELECT count(*) FROM mad_out.{free}", 1, TimeSpan.FromSeconds(20));
        var job = await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(batch, Ct));
        Assert.Equal("done", job.State);
        await BatchTables.AssertOnePredictionPerRowAsync(database.DataSource, refreshed, batch);

        // The blocked batch failed clearly, naming the lock and its holder, and its keys wait; nothing was scored for it.
        var error = await Eventually.WaitForAsync(
            () => database.DataSource.ScalarAsync<string?>("SELECT stream_error FROM mad.prediction_tables WHERE name = @blocked", new { blocked }),
            e => e is not null, "the blocked table's stream error", TimeSpan.FromSeconds(20));
        Assert.Contains("advisory lock", error, StringComparison.Ordinal);
        Assert.Contains($"role {attacker}", error, StringComparison.Ordinal);
        Assert.Equal(0, await database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{blocked}"));
        Assert.True(await database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_outbox.{blocked}") >= 1);

        // Let go: the table catches up on its own.
        await using (var release = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", attack))
        {
            await release.ExecuteNonQueryAsync(Ct);
        }

        await WaitForAsync(database, $"SELECT count(*) FROM mad_out.{blocked}", 2, TimeSpan.FromSeconds(40));
        await Eventually.WaitForAsync(
            () => database.DataSource.ScalarAsync<bool>("SELECT stream_error IS NULL FROM mad.prediction_tables WHERE name = @blocked", new { blocked }),
            ok => ok, "the blocked table's error to clear", TimeSpan.FromSeconds(20));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_held_migration_lock_fails_mad_db_migrate_clearly_instead_of_waiting_forever()
    {
        await using var roles = new HostileRoles(database);
        var (attacker, attackerSource) = await roles.LoginAsync("mallory");
        await using var attack = await attackerSource.OpenConnectionAsync(Ct);
        await using (var hold = new NpgsqlCommand($"SELECT pg_advisory_lock({Protocol.AdvisoryLocks.Migrations})", attack))
        {
            await hold.ExecuteNonQueryAsync(Ct);
        }

        var migrator = new PostgresMigrator(database.DataSource, lockTimeout: TimeSpan.FromMilliseconds(500));
        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => migrator.MigrateAsync(Ct));
        Assert.Equal(ErrorCode.Database, error.Code);
        Assert.Contains("migration lock", error.Message, StringComparison.Ordinal);
        Assert.Contains($"role {attacker}", error.Message, StringComparison.Ordinal);
        Assert.Contains("pg_terminate_backend", error.Message, StringComparison.Ordinal);

        await using (var release = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", attack))
        {
            await release.ExecuteNonQueryAsync(Ct);
        }

        Assert.Empty(await migrator.MigrateAsync(Ct)); // up to date, and nothing half-applied
    }
}

using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// mad.watch takes the stream_notify advisory lock (it writes capture functions, as mad.stream_set_notify does), and
/// any login may hold that key: the wait must end on its own, saying who holds the lock, and leave nothing behind.
/// </summary>
public sealed class WatchLockTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task A_held_stream_notify_lock_makes_watch_give_up_naming_the_holder_and_change_nothing()
    {
        var (source, name) = await CreatedAsync(Database, rows: 0);
        await using var roles = new HostileRoles(Database);
        var (attacker, attackerSource) = await roles.LoginAsync("mallory");

        // The attacker, as typed: the stream_notify key from the table in 001 ('MADN', object 0), held in its session.
        await using var attack = await attackerSource.OpenConnectionAsync(Ct);
        await using (var hold = new NpgsqlCommand("SELECT pg_advisory_lock(1296122958, 0)", attack))
        {
            await hold.ExecuteNonQueryAsync(Ct);
        }

        // The owner's session sets no lock_timeout (PostgreSQL's default, 0: wait forever).
        await using var owner = await Database.DataSource.OpenConnectionAsync(Ct);
        await using (var unbounded = new NpgsqlCommand("SET lock_timeout = 0", owner))
        {
            await unbounded.ExecuteNonQueryAsync(Ct);
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        limit.CancelAfter(TimeSpan.FromSeconds(40));
        await using var watch = new NpgsqlCommand("SELECT mad.watch(@name)", owner) { Parameters = { new("name", name) }, CommandTimeout = 0 };
        var error = await Assert.ThrowsAsync<PostgresException>(() => watch.ExecuteNonQueryAsync(limit.Token));

        Assert.Equal(PostgresErrorCodes.LockNotAvailable, error.SqlState);
        Assert.Contains($"to watch {name}: advisory lock stream_notify", error.MessageText, StringComparison.Ordinal);
        Assert.Contains($"role {attacker}", error.MessageText, StringComparison.Ordinal);
        Assert.Contains("pg_terminate_backend", error.Hint, StringComparison.Ordinal);
        Assert.Equal(0L, await TriggersAsync(source));
        Assert.False(await Database.DataSource.ScalarAsync<bool>("SELECT watched FROM mad.prediction_tables WHERE name = @name", new { name }));

        // Let go: watch works, and the caller's own lock_timeout is the same after it as before.
        await using (var release = new NpgsqlCommand("SELECT pg_advisory_unlock(1296122958, 0)", attack))
        {
            await release.ExecuteNonQueryAsync(Ct);
        }

        await using (var transaction = await owner.BeginTransactionAsync(Ct))
        {
            await using (var watched = new NpgsqlCommand("SELECT mad.watch(@name)", owner, transaction) { Parameters = { new("name", name) } })
            {
                await watched.ExecuteNonQueryAsync(Ct);
            }

            await using (var show = new NpgsqlCommand("SHOW lock_timeout", owner, transaction))
            {
                Assert.Equal("0", await show.ExecuteScalarAsync(Ct));
            }

            await transaction.CommitAsync(Ct);
        }

        Assert.Equal(5L, await TriggersAsync(source));
        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
    }

    private Task<long> TriggersAsync(string source) =>
        Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.{source}'::regclass AND tgname LIKE 'mad_watch_%'");
}

using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// The raw outbox tables (mad_outbox.&lt;name&gt;) hold the keys of a watched source's changed rows. Only the sidecar
/// drains them; people read the mad.outbox view, whose branches show a table's keys only to a role that may read them
/// in the source (008). An administrator is no exception: it holds no SELECT on the raw tables (012).
/// </summary>
public sealed class OutboxGrantTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task An_admin_who_may_not_read_the_source_cannot_read_its_keys_in_the_raw_outbox()
    {
        var (source, name) = await WatchedAsync(Database, rows: 0);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (41, {Setosa}), (42, {Virginica})");
        await using var roles = new HostileRoles(Database);
        var (_, admin) = await roles.LoginAsync("admin", "IN ROLE mad_admin");

        // The attack, as typed: around the gated view, straight at the table the capture triggers write.
        var error = await admin.FailsAsync($"SELECT id FROM mad_outbox.{name}");

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
        Assert.Equal($"permission denied for table {name}", error.MessageText);
        Assert.Equal(0L, await admin.ScalarAsync<long>("SELECT count(*) FROM mad.outbox WHERE prediction_table = @name", new { name }));
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE c.relnamespace = 'mad_outbox'::regnamespace AND a.grantee = 'mad_admin'::regrole"));

        // What an admin reads instead: the lag (`mad tables status`), and the keys once it may read the source.
        Assert.Equal(2L, await admin.ScalarAsync<long>("SELECT waiting FROM mad.stream_lag(@name)", new { name }));
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON public.{source} TO mad_admin");
        Assert.Equal("41 42", await admin.ScalarAsync<string>("SELECT string_agg(key[1], ' ' ORDER BY key[1]) FROM mad.outbox WHERE prediction_table = @name", new { name }));
        Assert.Equal(2L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_outbox.{name}"));
        await Database.DataSource.ExecuteAsync($"REVOKE SELECT ON public.{source} FROM mad_admin");
        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
    }
}

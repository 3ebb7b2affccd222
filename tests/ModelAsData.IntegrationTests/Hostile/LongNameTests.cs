using ModelAsData.IntegrationTests.Batch;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// A prediction table's name may take all 63 bytes PostgreSQL allows, so no object mad names after it may be longer:
/// PostgreSQL cuts an identifier to 63 bytes, and two names cut to one collide (watch's triggers, the key constraint
/// a refresh's swap renames). Such names come from a hash of the whole name (012).
/// </summary>
public sealed class LongNameTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task A_table_with_a_63_byte_name_is_watched_and_unwatched_and_unwatch_finds_the_triggers_of_a_watch_before_012()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 0);
        var name = LongName('w');
        await BatchTables.CreateAsync(tables, name, source, model);

        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        Assert.Equal(5L, await TriggersAsync(source)); // four capture triggers and the key-type guard
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}), (2, {Virginica})");
        Assert.Equal(2L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_outbox.{name}"));
        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
        Assert.Equal(0L, await TriggersAsync(source));

        // A table watched before 012 has triggers named 'mad_watch_<name>_<operation>' (names of at most 51 bytes
        // worked then): unwatch drops those too.
        var older = Sql.UniqueName("older");
        await BatchTables.CreateAsync(tables, older, source, model);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@older)", new { older });
        foreach (var operation in new[] { "i", "u", "d", "t", "k" })
        {
            var renamed = await Database.DataSource.ScalarAsync<string>("SELECT mad.watch_trigger(@older, @operation)", new { older, operation });
            await Database.DataSource.ExecuteAsync($"ALTER TRIGGER \"{renamed}\" ON public.{source} RENAME TO mad_watch_{older}_{operation}");
        }

        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@older)", new { older });
        Assert.Equal(0L, await TriggersAsync(source));
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (3, {Setosa})");
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_outbox.{older}"));
    }

    [Fact(Timeout = 120_000)]
    public async Task Two_63_byte_names_that_share_their_first_60_bytes_are_both_refreshed()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 50);
        var prefix = LongName('r')[..60];
        string[] names = [prefix + "one", prefix + "two"];
        foreach (var name in names)
        {
            await BatchTables.CreateAsync(tables, name, source, model);
        }

        foreach (var name in names.Concat(names))
        {
            var job = await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct));
            Assert.True(job.State == "done", $"refresh of {name}: {job.State} {job.Error}");
            await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        }

        Assert.Equal(2L, await Database.DataSource.ScalarAsync<long>(
            "SELECT count(DISTINCT c.conname) FROM pg_constraint c WHERE c.contype = 'p' AND c.conrelid = ANY (@tables::regclass[])",
            new { tables = names.Select(n => $"mad_out.{n}").ToArray() }));
    }

    /// <summary>A unique valid name of exactly 63 bytes.</summary>
    private static string LongName(char letter) => (Sql.UniqueName(letter + "long") + new string(letter, 63))[..63];

    private Task<long> TriggersAsync(string source) =>
        Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.{source}'::regclass AND tgname LIKE 'mad_watch_%'");
}

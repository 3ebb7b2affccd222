using ModelAsData.IntegrationTests.Batch;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Streaming;

/// <summary>Watched tables: trigger → outbox → drain → score → upsert, with in-process sidecars.</summary>
public sealed class StreamingTests(PostgresDatabase database) : WatchedTableTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Inserted_updated_and_deleted_rows_are_followed_by_their_predictions_within_seconds()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (source, name) = await WatchedAsync(rows: 0);

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}), (2, {Setosa}), (3, {Virginica})");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 3);
        var inserted = await Database.DataSource.QueryAsync<(long Id, long Label, int Version, string? Error)>(
            $"SELECT id, label, model_version, error FROM mad_out.{name} ORDER BY id");
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET (sepal_length, sepal_width, petal_length, petal_width) = ({Virginica}) WHERE id = 1");
        await WaitForAsync($"SELECT label FROM mad_out.{name} WHERE id = 1", inserted[2].Label);
        await Database.DataSource.ExecuteAsync($"DELETE FROM public.{source} WHERE id = 2");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 2);

        Assert.Equal([1L, 2L, 3L], inserted.Select(r => r.Id));
        Assert.All(inserted, r => Assert.Equal(1, r.Version));
        Assert.All(inserted, r => Assert.Null(r.Error));
        Assert.NotEqual(inserted[0].Label, inserted[2].Label);
        Assert.Equal([1L, 3L], await Database.DataSource.QueryAsync<long>($"SELECT id FROM mad_out.{name} ORDER BY id"));
        await WaitForAsync($"SELECT waiting FROM mad.stream_lag('{name}')", 0);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_row_updated_twice_quickly_ends_with_the_prediction_of_its_latest_values()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (source, name) = await WatchedAsync(rows: 0);

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}), (2, {Virginica}), (3, {Setosa})");
        for (var i = 0; i < 20; i++)
        {
            await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET (sepal_length, sepal_width, petal_length, petal_width) = ({(i % 2 == 0 ? Virginica : Setosa)}) WHERE id = 1");
        }

        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET (sepal_length, sepal_width, petal_length, petal_width) = ({Virginica}) WHERE id = 1");
        await WaitForAsync($"SELECT waiting FROM mad.stream_lag('{name}')", 0);
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 3);

        var rows = await Database.DataSource.QueryAsync<(long Id, long Label, float P0)>($"SELECT id, label, probability_0 FROM mad_out.{name} ORDER BY id");
        Assert.Equal(rows[1].Label, rows[0].Label);
        Assert.Equal(rows[1].P0, rows[0].P0);
        Assert.NotEqual(rows[2].Label, rows[0].Label);
    }

    [Fact(Timeout = 90_000)]
    public async Task Rows_written_while_no_sidecar_runs_wait_in_the_outbox_and_are_scored_when_one_starts()
    {
        var (source, name) = await WatchedAsync(rows: 0);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 5.0, 3.0, 1.5, 0.2 FROM generate_series(1, 500) g");
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET petal_length = 5.0 WHERE id <= 100");
        var waiting = await Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')");

        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 500);
        await WaitForAsync($"SELECT waiting FROM mad.stream_lag('{name}')", 0);

        Assert.Equal(600, waiting);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_row_that_cannot_be_scored_gets_its_error_and_the_others_their_predictions()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (source, name) = await WatchedAsync(rows: 0);

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}), (2, NULL, 3.0, 1.5, 0.2), (3, {Virginica})");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 3);

        var rows = await Database.DataSource.QueryAsync<(long Id, long? Label, string? Error)>($"SELECT id, label, error FROM mad_out.{name} ORDER BY id");
        Assert.Null(rows[0].Error);
        Assert.NotNull(rows[0].Label);
        Assert.Null(rows[1].Label);
        Assert.Contains("sepal_length", rows[1].Error, StringComparison.Ordinal);
        Assert.Null(rows[2].Error);
    }

    [Fact(Timeout = 120_000)]
    public async Task Two_sidecars_drain_one_outbox_without_overlap()
    {
        await using var first = await RunningSidecar.StartAsync(Database.ConnectionString);
        await using var second = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (source, name) = await WatchedAsync(rows: 0);
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '200' WHERE name = 'stream_batch_rows'");
        try
        {
            var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
            {
                for (var i = 0; i < 50; i++)
                {
                    var from = (w * 50 + i) * 100 + 1;
                    await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 4.3 + (g % 37) * 0.1, 2.0 + (g % 23) * 0.1, 1.0 + (g % 59) * 0.1, 0.1 + (g % 25) * 0.1 FROM generate_series({from}, {from + 99}) g");
                    await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET sepal_width = sepal_width + 0.1 WHERE id BETWEEN {from} AND {from + 9}");
                }
            }, Ct)).ToArray();
            await Task.WhenAll(writers);

            await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 20_000, TimeSpan.FromSeconds(60));
            await WaitForAsync($"SELECT waiting FROM mad.stream_lag('{name}')", 0);
            await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
            Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name} WHERE error IS NOT NULL"));
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '1000' WHERE name = 'stream_batch_rows'");
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Unwatch_removes_the_triggers_and_the_waiting_keys()
    {
        var (source, name) = await WatchedAsync(rows: 0);
        var triggers = $"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.{source}'::regclass AND tgname LIKE 'mad_watch_%'";
        var watchedTriggers = await Database.DataSource.ScalarAsync<long>(triggers);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa})");

        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (2, {Setosa})");

        Assert.Equal(5, watchedTriggers); // insert, update, delete, truncate, and the key columns' type guard
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>(triggers));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')"));
        Assert.False(await Database.DataSource.ScalarAsync<bool>("SELECT watched FROM mad.prediction_tables WHERE name = @name", new { name }));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_mad_user_watches_its_own_table_only_once_it_may_select_and_trigger_the_source()
    {
        var (source, name) = await CreatedAsync(rows: 0);
        var login = Sql.UniqueName("analyst");
        await Database.DataSource.ExecuteAsync($"CREATE ROLE {login} LOGIN PASSWORD 'pw' IN ROLE mad_user");
        // Creating is for mad_admin: the admin hands the table over to the analyst.
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @login WHERE name = @name", new { login, name });
        await using var user = await PostgresModelRegistry.OpenAsync(Database.ConnectionStringFor(login, "pw"), Ct);

        var denied = await user.DataSource.FailsAsync("SELECT mad.watch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {login}; GRANT SELECT ON public.{source} TO {login}");
        var noTrigger = await user.DataSource.FailsAsync("SELECT mad.watch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"GRANT TRIGGER ON public.{source} TO {login}");
        await user.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        Assert.Contains($"may not SELECT from public.{source}", denied.MessageText, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, noTrigger.SqlState);
        Assert.Contains($"needs the TRIGGER privilege on public.{source}", noTrigger.MessageText, StringComparison.Ordinal);
        Assert.True(await Database.DataSource.ScalarAsync<bool>("SELECT watched FROM mad.prediction_tables WHERE name = @name", new { name }));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_sidecar_logged_in_with_only_mad_sidecar_streams_a_table_as_its_owner()
    {
        var (source, name) = await WatchedAsync(rows: 0);
        // The sidecar reads as the binding's owner (never as a superuser): hand the table to a role that may read the
        // source; the sidecar's login itself is granted nothing on it.
        var owner = Sql.UniqueName("owner");
        await Database.DataSource.ExecuteAsync($"CREATE ROLE {owner} NOLOGIN IN ROLE mad_user; GRANT SELECT ON public.{source} TO {owner}; UPDATE mad.prediction_tables SET owner = '{owner}' WHERE name = '{name}'");
        var login = Sql.UniqueName("streamer");
        await Database.DataSource.ExecuteAsync($"CREATE ROLE {login} LOGIN PASSWORD 'pw' IN ROLE mad_sidecar");
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionStringFor(login, "pw"));

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}), (2, {Virginica})");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 2);
        await Database.DataSource.ExecuteAsync($"DELETE FROM public.{source} WHERE id = 1");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 1);

        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name} WHERE error IS NOT NULL"));
    }
}

using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Jobs;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Streaming;

/// <summary>
/// The per-table outboxes (006_streaming.sql): typed keys of any shape, the wake-up compiled into the capture
/// functions, capture under a writer's hostile search_path, and <c>mad.outbox</c> as the view over them.
/// </summary>
public sealed class StreamOutboxTests(PostgresDatabase database) : WatchedTableTests(database)
{
    /// <summary>How long a writer's NOTIFY may take to arrive (a busy machine), and how long its absence is watched for.</summary>
    private static readonly TimeSpan Heard = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(500);


    [Fact(Timeout = 60_000)]
    public async Task A_composite_text_and_integer_key_is_captured_with_its_types_and_followed_through_a_key_change()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = Sql.UniqueName("regional");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (region text, id int, sepal_length real, sepal_width real, petal_length real, petal_width real, PRIMARY KEY (region, id))
            """);
        var name = Sql.UniqueName("stream");
        await tables.CreateAsync(new PredictionTableSpec(name, $"public.{source}", ["region", "id"], model, FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES ('north', 1, {Setosa}), ('south', 1, {Virginica}), ('it''s', 2, {Setosa})");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 3);
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET region = 'east' WHERE region = 'north'");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name} WHERE region = 'east'", 1);
        await Database.DataSource.ExecuteAsync($"DELETE FROM public.{source} WHERE id = 2");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 2);

        Assert.Equal(["east", "south"], await Database.DataSource.QueryAsync<string>($"SELECT region FROM mad_out.{name} ORDER BY region"));
        Assert.Equal(["region text", "id integer"], await Database.DataSource.QueryAsync<string>($"""
            SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
            WHERE a.attrelid = 'mad_outbox.{name}'::regclass AND a.attnum > 0 AND a.attname NOT LIKE 'mad\_%' ORDER BY a.attnum
            """));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"""
            SELECT count(*) FROM public.{source} s FULL JOIN mad_out.{name} p USING (region, id) WHERE s.region IS NULL OR p.region IS NULL OR p.error IS NOT NULL
            """));
    }

    [Fact(Timeout = 60_000)]
    public async Task Writers_notify_only_while_the_drains_ask_for_it_and_only_the_polling_drain_turns_it_back_on()
    {
        var (source, name) = await WatchedAsync(rows: 0);
        await using var listener = await Database.DataSource.OpenConnectionAsync(Ct);
        var heard = 0;
        listener.Notification += (_, e) =>
        {
            if (e.Payload == name)
            {
                Interlocked.Increment(ref heard);
            }
        };
        await using (var listen = new NpgsqlCommand("LISTEN mad_rows", listener))
        {
            await listen.ExecuteNonQueryAsync(Ct);
        }

        await using var poller = await UnpooledAsync();
        await using var other = await UnpooledAsync();
        var pollerTurnsOff = await SetNotifyAsync(poller, false);
        var whilePolling = await HeardAfterInsertAsync(1, Quiet);
        var otherTurnsOn = await SetNotifyAsync(other, true);
        var stillPolling = await HeardAfterInsertAsync(2, Quiet);
        var pollerTurnsOn = await SetNotifyAsync(poller, true);
        var whileNotifying = await HeardAfterInsertAsync(3, Heard);
        await SetNotifyAsync(poller, false);
        var pollerPid = poller.ProcessID;
        await poller.CloseAsync(); // the drain that polls is gone (once its backend has exited): another may turn NOTIFY on
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE pid = @pollerPid", new { pollerPid }),
            n => n == 0, "the poller's backend to exit", TimeSpan.FromSeconds(10));
        var otherTurnsOnAfterPollerLeft = await SetNotifyAsync(other, true);
        var notifyingAgain = await HeardAfterInsertAsync(4, Heard);

        Assert.False(pollerTurnsOff);
        Assert.Equal(0, whilePolling);
        Assert.False(otherTurnsOn);
        Assert.Equal(0, stillPolling);
        Assert.True(pollerTurnsOn);
        Assert.Equal(1, whileNotifying);
        Assert.True(otherTurnsOnAfterPollerLeft);
        Assert.Equal(1, notifyingAgain);
        Assert.Equal(4, await Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')"));
        Assert.Equal("{1} {2} {3} {4}", await Database.DataSource.ScalarAsync<string>( // the view over every outbox
            "SELECT string_agg(key::text, ' ' ORDER BY id) FROM mad.outbox WHERE prediction_table = @name", new { name }));

        async Task<int> HeardAfterInsertAsync(int id, TimeSpan wait)
        {
            Interlocked.Exchange(ref heard, 0);
            await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES ({id}, {Setosa})");
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            await using var poll = new NpgsqlCommand("SELECT 1", listener); // notifications arrive between commands
            while (Volatile.Read(ref heard) == 0 && System.Diagnostics.Stopwatch.GetElapsedTime(started) < wait)
            {
                await Task.Delay(50, Ct);
                await poll.ExecuteScalarAsync(Ct);
            }

            return Volatile.Read(ref heard);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_writer_with_a_hostile_search_path_cannot_reach_into_the_capture_functions()
    {
        var (source, name) = await WatchedAsync(rows: 0);
        var hostile = Sql.UniqueName("hostile");
        // Lookalikes of what the capture functions call, which would run as their owner if they were found.
        await Database.DataSource.ExecuteAsync($"""
            CREATE SCHEMA {hostile};
            CREATE FUNCTION {hostile}.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked pg_notify'; END $$;
            CREATE FUNCTION {hostile}.eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked ='; END $$;
            CREATE OPERATOR {hostile}.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = {hostile}.eq);
            CREATE TABLE {hostile}.outbox (id bigint);
            """);
        await using var writer = await Database.DataSource.OpenConnectionAsync(Ct);
        await using var write = new NpgsqlCommand($"""
            SET search_path = {hostile}, pg_catalog, public;
            INSERT INTO public.{source} VALUES (1, {Setosa}), (2, {Setosa});
            UPDATE public.{source} SET petal_length = 5 WHERE id = 1;
            DELETE FROM public.{source} WHERE id = 2;
            """, writer);
        await write.ExecuteNonQueryAsync(Ct);
        var waiting = await Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')");
        await using var truncate = new NpgsqlCommand($"TRUNCATE public.{source}", writer);
        await truncate.ExecuteNonQueryAsync(Ct);

        Assert.Equal(4, waiting); // two inserted, one updated, one deleted
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')"));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM {hostile}.outbox"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Mad_outbox_is_a_view_of_every_watched_tables_waiting_keys()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 0);
        var name = Sql.UniqueName("viewed");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}), (2, {Virginica})");
        var keys = await Database.DataSource.QueryAsync<string>(
            "SELECT array_to_string(key, ',') FROM mad.outbox WHERE prediction_table = @name ORDER BY id", new { name });
        await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });

        Assert.Equal("v", await Database.DataSource.ScalarAsync<string>("SELECT relkind::text FROM pg_class WHERE oid = 'mad.outbox'::regclass"));
        Assert.Equal(["1", "2"], keys);
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.outbox WHERE prediction_table = @name", new { name }));
    }

    private async Task<NpgsqlConnection> UnpooledAsync()
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(Database.ConnectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync(Ct);
        return connection;
    }

    private static async Task<bool> SetNotifyAsync(NpgsqlConnection connection, bool notify)
    {
        await using var command = new NpgsqlCommand("SELECT mad.stream_set_notify($1)", connection) { Parameters = { new() { Value = notify } } };
        return (bool)(await command.ExecuteScalarAsync(Ct))!;
    }
}

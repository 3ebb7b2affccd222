using Dapper;
using Microsoft.Extensions.DependencyInjection;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Requests;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar.Requests;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Streaming;

/// <summary>Streaming while other things change: TRUNCATE, an alias move, a refresh, a source that stops fitting.</summary>
public sealed class StreamingChangesTests(PostgresDatabase database) : WatchedTableTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Truncating_a_watched_source_removes_its_predictions_with_it()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (source, name) = await WatchedAsync(rows: 0);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}), (2, {Virginica})");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 2);

        await Database.DataSource.ExecuteAsync($"BEGIN; TRUNCATE public.{source}; ROLLBACK");
        var afterRollback = await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}");
        await Database.DataSource.ExecuteAsync($"TRUNCATE public.{source}");
        var afterTruncate = await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (3, {Setosa})");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 1);

        Assert.Equal(2, afterRollback);
        Assert.Equal(0, afterTruncate);
        Assert.Equal(3, await Database.DataSource.ScalarAsync<long>($"SELECT id FROM mad_out.{name}"));
    }

    [Fact(Timeout = 90_000)]
    public async Task Moving_the_alias_streams_the_next_rows_with_the_new_version()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, _, registry) = await BatchTables.TwoReadyVersionsAsync(Database);
        var (source, name) = await WatchedAsync(rows: 0, model);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa})");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 1);

        await registry.SetAliasAsync(model, "production", 2, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (2, {Virginica})");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 2);

        Assert.Equal([(1L, 1), (2L, 2)], await Database.DataSource.QueryAsync<(long, int)>($"SELECT id, model_version FROM mad_out.{name} ORDER BY id"));
    }

    [Fact(Timeout = 90_000)]
    public async Task Keys_streamed_while_a_refresh_runs_are_scored_again_once_it_swaps_its_table_in()
    {
        var (source, name) = await WatchedAsync(rows: 100);
        var job = await Database.DataSource.ScalarAsync<long>("SELECT mad.refresh(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET petal_length = 5.0 WHERE id = 7");
        // A drain that ran during the refresh (the keys left the outbox, as a sidecar's batch takes them).
        await using (var connection = await Database.DataSource.OpenConnectionAsync(Ct))
        {
            var claim = await connection.ExecuteScalarAsync<string>("SELECT mad.stream_claim_statement(@name)", new { name });
            await using var transaction = await connection.BeginTransactionAsync(Ct);
            await using var command = new NpgsqlCommand(claim, connection, transaction) { Parameters = { new() { Value = 100 } } };
            await command.ExecuteNonQueryAsync(Ct);
            await transaction.CommitAsync(Ct);
        }

        var remembered = await Database.DataSource.QueryAsync<string>("SELECT key[1] FROM mad.stream_during_refresh WHERE job_id = @job", new { job });

        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        await BatchTables.WaitAsync(new PostgresPredictionTables(new PostgresModelRegistry(Database.DataSource)), job);
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<bool>($"SELECT p.scored_at >= j.finished_at FROM mad_out.{name} p, mad.jobs j WHERE p.id = 7 AND j.id = @job", new { job }),
            rescored => rescored, "row 7 scored again after the swap", TimeSpan.FromSeconds(10));

        Assert.Equal(["7"], remembered);
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.stream_during_refresh WHERE job_id = @job", new { job }));
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_table_whose_batches_fail_keeps_its_keys_shows_why_and_streams_again_once_fixed()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (source, name) = await WatchedAsync(rows: 0);
        var (other, otherName) = await WatchedAsync(rows: 0);

        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{source} RENAME COLUMN petal_width TO petal_w");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}); INSERT INTO public.{other} VALUES (1, {Setosa})");
        var error = await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@name)", new { name }),
            e => e is not null, "the failing batch's error", TimeSpan.FromSeconds(10));
        await WaitForAsync($"SELECT count(*) FROM mad_out.{otherName}", 1);
        var waiting = await Database.DataSource.ScalarAsync<long>("SELECT waiting FROM mad.stream_lag(@name)", new { name });

        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{source} RENAME COLUMN petal_w TO petal_width");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name} WHERE error IS NULL", 1, TimeSpan.FromSeconds(20));
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<string?>("SELECT error FROM mad.stream_lag(@name)", new { name }),
            e => e is null, "the error cleared", TimeSpan.FromSeconds(10));

        Assert.Contains("petal_width", error, StringComparison.Ordinal);
        Assert.Equal(1, waiting);
    }

    [Fact(Timeout = 60_000)]
    public async Task Streamed_rows_show_in_metrics_and_in_the_tables_figures()
    {
        await using var sidecar = await RequestSupport.StartSidecarAsync(Database, $"127.0.0.1:{RequestSupport.FreePort()}");
        using var http = new HttpClient { BaseAddress = sidecar.Services.GetRequiredService<HttpInferenceService>().Address };
        var (source, name) = await WatchedAsync(rows: 0);

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Setosa}), (2, {Virginica}), (3, NULL, 1, 1, 1)");
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name}", 3);
        await WaitForAsync($"SELECT coalesce(sum(rows_total), 0) FROM mad.stream_stats WHERE prediction_table = '{name}'", 3);
        var metrics = await http.GetStringAsync("/metrics", Ct);

        Assert.Contains($"mad_stream_rows_total{{table=\"{name}\"}} 3", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_stream_rows_failed_total{{table=\"{name}\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_stream_batches_total{{table=\"{name}\",outcome=\"ok\"}}", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_stream_waiting_keys{{table=\"{name}\"}} 0", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_stream_batch_duration_seconds_count{{table=\"{name}\"}}", metrics, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Truncate_unwatch_and_watch_while_a_sidecar_drains_do_not_deadlock()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (source, name) = await WatchedAsync(rows: 0);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var writing = Task.Run(async () =>
        {
            for (var id = 0; !stop.IsCancellationRequested; id += 200)
            {
                await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 5.1, 3.5, 1.4, 0.2 FROM generate_series({id + 1}, {id + 200}) g");
            }
        }, CancellationToken.None);

        for (var i = 0; i < 5; i++)
        {
            await Task.Delay(150, Ct);
            await Database.DataSource.ExecuteAsync($"TRUNCATE public.{source}");
            await Task.Delay(150, Ct);
            await Database.DataSource.ExecuteAsync("SELECT mad.unwatch(@name)", new { name });
            await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        }

        await stop.CancelAsync();
        await writing;
        await WaitForAsync($"SELECT waiting FROM mad.stream_lag('{name}')", 0);

        // No prediction outlives its row, whatever the interleaving.
        await WaitForAsync($"SELECT count(*) FROM mad_out.{name} p WHERE NOT EXISTS (SELECT FROM public.{source} s WHERE s.id = p.id)", 0);
        Assert.True(await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM public.{source}") > 0);
    }
}

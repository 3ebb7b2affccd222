using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// Streaming honours the deployment exactly as refresh does (019): each streamed row by its key's bucket, recording
/// its version and arm, under the deployment each batch reads in its own transaction.
/// </summary>
public sealed class StreamUnderDeploymentTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 180_000)]
    public async Task Under_a_30_percent_canary_a_streamed_row_and_a_refreshed_row_of_the_same_key_agree()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        // The running sidecar may have claimed version 2 first (SKIP LOCKED): wait for its verdict.
        await registry.WaitForValidationAsync(model, 2, TimeSpan.FromSeconds(30), Ct);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, percent => 30)", new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 300);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await tables.RefreshAsync(name, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        // New keys and changed keys reach the table through the stream only.
        await Database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{source} SELECT g, 4.4 + (g % 31) * 0.1, 2.1 + (g % 19) * 0.1, 1.2 + (g % 53) * 0.1, 0.2 + (g % 23) * 0.1 FROM generate_series(301, 600) g;
            UPDATE public.{source} SET sepal_length = sepal_length + 0.3, petal_length = petal_length + 0.7 WHERE id <= 150;
            """);
        await StreamedAsync(name, source);
        var streamed = Sql.UniqueName("streamed");
        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{streamed} AS SELECT * FROM mad_out.{name} WHERE id > 300 OR id <= 150");
        var arms = await Database.DataSource.QueryAsync<(string Arm, int Version)>($"SELECT DISTINCT arm, model_version FROM public.{streamed} ORDER BY arm");
        Assert.Equal([("canary", 2), ("champion", 1)], arms);
        var disagreeing = await Database.DataSource.ScalarAsync<long>($"""
            SELECT count(*) FROM public.{streamed} o, mad.deployments d
            WHERE d.model = @model AND (o.arm, o.model_version) IS DISTINCT FROM
                  (CASE WHEN mad.bucket(d.seed, mad.key_text(o.id::text)) < d.canary_percent / 100 THEN ('canary'::text, 2) ELSE ('champion'::text, 1) END)
            """, new { model });
        Assert.Equal(0, disagreeing);

        // The refresh of the same table, under the same deployment, writes the same rows: version, arm and outputs.
        await tables.RefreshAsync(name, cancellationToken: Ct);
        var differing = await Database.DataSource.QueryAsync<long>($"""
            SELECT coalesce(s.id, o.id) FROM public.{streamed} s LEFT JOIN mad_out.{name} o USING (id)
            WHERE o.id IS NULL OR EXISTS (
              SELECT FROM jsonb_each(to_jsonb(s) - 'scored_at') e FULL JOIN jsonb_each(to_jsonb(o) - 'scored_at') f USING (key)
              WHERE CASE WHEN jsonb_typeof(e.value) = 'number' AND jsonb_typeof(f.value) = 'number'
                         THEN abs(e.value::text::double precision - f.value::text::double precision) > 1e-6
                         ELSE e.value IS DISTINCT FROM f.value END)
            ORDER BY 1
            """);
        Assert.Empty(differing);
        Assert.Equal(450, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM public.{streamed}"));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_promote_a_new_canary_and_an_abort_while_streaming_switch_the_next_batches()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        // The running sidecar may have claimed version 2 first (SKIP LOCKED): wait for its verdict.
        await registry.WaitForValidationAsync(model, 2, TimeSpan.FromSeconds(30), Ct);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, percent => 30)", new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 200);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        Assert.Equal([("canary", 2), ("champion", 1)], await TouchAndReadArmsAsync(name, source));

        await Database.DataSource.ExecuteAsync("SELECT mad.promote(@model, 'production')", new { model });
        Assert.Equal([("champion", 2)], await TouchAndReadArmsAsync(name, source));

        await Database.DataSource.ExecuteAsync("SELECT mad.deploy_canary(@model, 'production', 3, percent => 100)", new { model });
        Assert.Equal([("canary", 3)], await TouchAndReadArmsAsync(name, source));

        await Database.DataSource.ExecuteAsync("SELECT mad.abort_deployment(@model, 'production')", new { model });
        Assert.Equal([("champion", 2)], await TouchAndReadArmsAsync(name, source));
    }

    /// <summary>Changes every source row, waits for the stream to score them all, and answers the arms and versions written.</summary>
    private async Task<IReadOnlyList<(string Arm, int Version)>> TouchAndReadArmsAsync(string name, string source)
    {
        var before = await Database.DataSource.ScalarAsync<DateTime>("SELECT clock_timestamp()");
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET sepal_width = sepal_width + 0.1");
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name} WHERE scored_at < @before", new { before }),
            n => n == 0, "every row streamed again");
        await StreamedAsync(name, source);
        return await Database.DataSource.QueryAsync<(string, int)>($"SELECT DISTINCT arm, model_version FROM mad_out.{name} ORDER BY 1, 2");
    }

    private async Task StreamedAsync(string name, string source)
    {
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>(
            $"SELECT (SELECT waiting FROM mad.stream_lag(@name)) + abs((SELECT count(*) FROM public.{source}) - (SELECT count(*) FROM mad_out.{name}))", new { name }),
            n => n == 0, "the stream to drain");
    }
}

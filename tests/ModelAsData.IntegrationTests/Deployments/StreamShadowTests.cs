using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// Shadow scoring on streams (025): a streamed batch under a shadow writes the sampled keys' shadow rows into the same
/// mad_out.&lt;name&gt;__shadow a refresh fills, in its own transaction; a shadow that cannot score never holds the served rows back.
/// </summary>
public sealed class StreamShadowTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 180_000)]
    public async Task Streamed_rows_under_a_shadow_get_shadow_rows_for_exactly_the_sampled_keys_equal_to_the_shadow_version_and_none_served()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        await registry.WaitForValidationAsync(model, 2, TimeSpan.FromSeconds(30), Ct);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        // Champion 1, canary 3 (the same forest) on 30 % of keys, shadow 2 (the rotated forest) on 40 %.
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 3, percent => 30);
            SELECT mad.deploy_shadow(@model, 'production', 2, percent => 40);
            """, new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 0);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        // What the shadow version says about each row, scored directly: a table bound to version 2 itself.
        var direct = Sql.UniqueName("direct");
        await BatchTables.CreateAsync(tables, direct, source, model + "@2");
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        // Streamed only: no refresh of the table ever ran (no job).
        await Database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{source} SELECT g, 4.4 + (g % 31) * 0.1, 2.1 + (g % 19) * 0.1, 1.2 + (g % 53) * 0.1, 0.2 + (g % 23) * 0.1 FROM generate_series(1, 800) g
            """);
        await StreamedAsync(name, source);
        await AssertShadowOfSampledKeysAsync(model, name, direct, source);
        Assert.Null(await Database.DataSource.ScalarAsync<long?>("SELECT last_job FROM mad.prediction_tables WHERE name = @name", new { name }));

        // Changed and deleted keys: each key keeps one shadow row, the one of its current served row; a deleted key none.
        await Database.DataSource.ExecuteAsync($"""
            UPDATE public.{source} SET petal_length = petal_length + 1.5 WHERE id % 3 = 0;
            DELETE FROM public.{source} WHERE id % 10 = 1;
            """);
        await StreamedAsync(name, source);
        await AssertShadowOfSampledKeysAsync(model, name, direct, source);

        // A refresh's rows replace the streamed ones, and later streamed rows join them: the view agrees with the served table.
        await tables.RefreshAsync(name, cancellationToken: Ct);
        await AssertShadowOfSampledKeysAsync(model, name, direct, source);
        await Database.DataSource.ExecuteAsync($"UPDATE public.{source} SET sepal_width = sepal_width + 0.4 WHERE id % 4 = 0");
        await StreamedAsync(name, source);
        await AssertShadowOfSampledKeysAsync(model, name, direct, source);
        var storage = await Database.DataSource.QueryAsync<(bool Streamed, long Rows)>(
            $"SELECT job IS NULL, count(*) FROM mad_shadow.{name} GROUP BY 1 ORDER BY 1");
        Assert.Equal([false, true], storage.Select(s => s.Streamed));

        // The report counts every visible shadow row, streamed ones included.
        var visible = await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow");
        var report = (await Database.DataSource.QueryAsync<(long Rows, double? Equal, string? Error)>(
            "SELECT rows_scored, share_equal, shadow_error FROM mad.deployment_report WHERE model = @model AND arm = 'shadow'", new { model })).Single();
        Assert.Equal(visible, report.Rows);
        Assert.NotNull(report.Equal);
        Assert.Null(report.Error);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_shadow_that_cannot_load_never_holds_streamed_rows_back_and_says_why()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        await registry.WaitForValidationAsync(model, 2, TimeSpan.FromSeconds(30), Ct);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_shadow(@model, 'production', 2)", new { model });
        // Version 2's bytes go bad after it was validated: ONNX Runtime refuses them.
        await Database.DataSource.ExecuteAsync("""
            ALTER TABLE mad.model_versions DISABLE TRIGGER USER;
            UPDATE mad.model_versions SET onnx = '\x0102030405'::bytea, sha256 = encode(sha256(random()::text::bytea), 'hex') WHERE model = @model AND version = 2;
            ALTER TABLE mad.model_versions ENABLE TRIGGER USER;
            """, new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 0);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT g, 5.0, 3.0, 1.5, 0.2 FROM generate_series(1, 300) g");
        await StreamedAsync(name, source);

        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        Assert.Equal([(1, "champion")], await Database.DataSource.QueryAsync<(int, string)>($"SELECT DISTINCT model_version, arm FROM mad_out.{name}"));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow"));
        Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT stream_error FROM mad.prediction_tables WHERE name = @name", new { name }));
        var error = await Database.DataSource.ScalarAsync<string>("SELECT shadow_error FROM mad.prediction_tables WHERE name = @name", new { name });
        Assert.Contains($"The shadow {model}@2 failed to load", error, StringComparison.Ordinal);
        Assert.Equal(error, await Database.DataSource.ScalarAsync<string>(
            "SELECT shadow_error FROM mad.deployment_report WHERE model = @model AND arm = 'shadow'", new { model }));
    }

    /// <summary>
    /// The shadow view holds one row per key the shadow samples (mad.bucket under the deployment's seed) and none other,
    /// each equal to version 2's own prediction of the row and beside the version that served it; nothing served is 2's.
    /// </summary>
    private async Task AssertShadowOfSampledKeysAsync(string model, string name, string direct, string source)
    {
        await new PostgresPredictionTables(new PostgresModelRegistry(Database.DataSource), TimeSpan.FromMilliseconds(50)).RefreshAsync(direct, cancellationToken: Ct);
        var (missing, extra, twice, differing, served) = (await Database.DataSource.QueryAsync<(long, long, long, long, long)>($"""
            SELECT (SELECT count(*) FROM public.{source} f, mad.deployments d
                    WHERE d.model = @model AND mad.bucket(d.seed, mad.key_text(f.id::text)) < d.shadow_percent / 100
                      AND NOT EXISTS (SELECT FROM mad_out.{name}__shadow s WHERE s.id = f.id)),
                   (SELECT count(*) FROM mad_out.{name}__shadow s, mad.deployments d
                    WHERE d.model = @model AND (NOT mad.bucket(d.seed, mad.key_text(s.id::text)) < d.shadow_percent / 100
                                                OR NOT EXISTS (SELECT FROM public.{source} f WHERE f.id = s.id))),
                   (SELECT count(*) - count(DISTINCT id) FROM mad_out.{name}__shadow),
                   (SELECT count(*) FROM mad_out.{name}__shadow s JOIN mad_out.{direct} x USING (id) JOIN mad_out.{name} o USING (id)
                    WHERE s.shadow_version <> 2 OR s.error IS NOT NULL OR s.label IS DISTINCT FROM x.label
                       OR abs(s.probability_0 - x.probability_0) > 1e-6 OR abs(s.probability_1 - x.probability_1) > 1e-6
                       OR s.served_version <> o.model_version),
                   (SELECT count(*) FROM mad_out.{name} WHERE model_version = 2 OR arm NOT IN ('champion', 'canary'))
            """, new { model })).Single();
        Assert.Equal((0L, 0L, 0L, 0L, 0L), (missing, extra, twice, differing, served));
        Assert.True(await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow") > 0);
    }

    private async Task StreamedAsync(string name, string source)
    {
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>(
            $"SELECT (SELECT waiting FROM mad.stream_lag(@name)) + abs((SELECT count(*) FROM public.{source}) - (SELECT count(*) FROM mad_out.{name}))", new { name }),
            n => n == 0, "the stream to drain");
    }
}

using ModelAsData.Postgres.Jobs;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>Batch refresh honours the deployment its job started under: each row by its key's bucket, one deployment per job.</summary>
public sealed class RefreshUnderDeploymentTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task Each_row_is_scored_by_the_version_its_keys_bucket_gets_and_records_it_with_its_arm()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, percent => 30)", new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3_000);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(3_000, result.Rows);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        // SQL recomputes every assignment from the published hash and the deployment's seed.
        var disagreeing = await Database.DataSource.ScalarAsync<long>($"""
            SELECT count(*) FROM mad_out.{name} o, mad.deployments d
            WHERE d.model = @model AND (o.arm, o.model_version) IS DISTINCT FROM
                  (CASE WHEN mad.bucket(d.seed, mad.key_text(o.id::text)) < d.canary_percent / 100 THEN ('canary'::text, 2) ELSE ('champion'::text, 1) END)
            """, new { model });
        Assert.Equal(0, disagreeing);
        // The canary's rows carry its predictions: the rotated forest's class 1 probability is the forest's class 0 one
        // (labels too, but for ties). A table bound to version 1 itself (no alias, no deployment) has the champion's.
        var plain = Sql.UniqueName("plain");
        await BatchTables.CreateAsync(tables, plain, source, model + "@1");
        await tables.RefreshAsync(plain, cancellationToken: Ct);
        var wrongLabels = await Database.DataSource.ScalarAsync<long>($"""
            SELECT count(*) FROM mad_out.{name} o JOIN mad_out.{plain} p USING (id)
            WHERE abs(CASE WHEN o.arm = 'canary' THEN o.probability_1 ELSE o.probability_0 END - p.probability_0) > 1e-6 OR p.arm <> 'champion'
            """);
        Assert.Equal(0, wrongLabels);
        var canaryRows = await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name} WHERE arm = 'canary'");
        var sigma = Math.Sqrt(3_000 * 0.3 * 0.7);
        Assert.InRange(canaryRows, 900 - 3 * sigma, 900 + 3 * sigma);
        var report = await Database.DataSource.QueryAsync<(string Arm, int Version, long Rows)>(
            "SELECT arm, version, rows_scored FROM mad.deployment_report WHERE model = @model ORDER BY arm", new { model });
        Assert.Equal([("canary", 2, canaryRows), ("champion", 1, 3_000 - canaryRows)], report);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_blue_green_switch_during_a_refresh_applies_to_the_next_job_and_never_mixes_versions_in_one()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 2_000);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);

        // The job starts (no sidecar yet, so none of it has run), then the switch commits.
        var job = await tables.StartRefreshAsync(name, Ct);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 2)", new { model });
        await using (var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString))
        {
            var done = await BatchTables.WaitAsync(tables, job);
            Assert.Equal("done", done.State);
            Assert.Equal([(1, "champion")], await Database.DataSource.QueryAsync<(int, string)>($"SELECT DISTINCT model_version, arm FROM mad_out.{name}"));

            await tables.RefreshAsync(name, cancellationToken: Ct);
            Assert.Equal([(2, "champion")], await Database.DataSource.QueryAsync<(int, string)>($"SELECT DISTINCT model_version, arm FROM mad_out.{name}"));

            // Aborting or rolling back switches back at once, for the next job.
            await Database.DataSource.ExecuteAsync("SELECT mad.rollback_alias(@model, 'production')", new { model });
            await tables.RefreshAsync(name, cancellationToken: Ct);
            Assert.Equal([(1, "champion")], await Database.DataSource.QueryAsync<(int, string)>($"SELECT DISTINCT model_version, arm FROM mad_out.{name}"));
        }
    }
}

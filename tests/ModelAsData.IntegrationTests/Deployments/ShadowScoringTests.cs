using ModelAsData.Postgres.Jobs;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// Shadow scoring in batch refresh (020): mad_out.&lt;name&gt;__shadow holds the shadow's predictions for the keys it
/// samples, beside the version that served each; the served table never changes for it, nor fails with it.
/// </summary>
public sealed class ShadowScoringTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task Shadow_rows_for_every_sampled_key_and_none_served_and_champion_vs_shadow_is_a_join()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        // Champion 1, canary 3 (the same forest) on half the keys, shadow 2 (the rotated forest) on 40 %.
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 3, percent => 50);
            SELECT mad.deploy_shadow(@model, 'production', 2, percent => 40);
            """, new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3_000);
        await BatchTables.SmallTasksAsync(Database.DataSource, 700);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(3_000, result.Rows);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        // Nothing served is the shadow's.
        Assert.Equal([(1, "champion"), (3, "canary")], await Database.DataSource.QueryAsync<(int, string)>(
            $"SELECT DISTINCT model_version, arm FROM mad_out.{name} ORDER BY 1"));
        // Exactly the sampled keys, by the published hash and the deployment's seed, each once.
        var (missing, extra, twice) = (await Database.DataSource.QueryAsync<(long, long, long)>($"""
            SELECT (SELECT count(*) FROM {source} f, mad.deployments d
                    WHERE d.model = @model AND mad.bucket(d.seed, mad.key_text(f.id::text)) < d.shadow_percent / 100
                      AND NOT EXISTS (SELECT FROM mad_out.{name}__shadow s WHERE s.id = f.id)),
                   (SELECT count(*) FROM mad_out.{name}__shadow s, mad.deployments d
                    WHERE d.model = @model AND NOT mad.bucket(d.seed, mad.key_text(s.id::text)) < d.shadow_percent / 100),
                   (SELECT count(*) - count(DISTINCT id) FROM mad_out.{name}__shadow)
            """, new { model })).Single();
        Assert.Equal((0L, 0L, 0L), (missing, extra, twice));
        var shadowRows = await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow");
        var sigma = Math.Sqrt(3_000 * 0.4 * 0.6);
        Assert.InRange(shadowRows, 1_200 - 3 * sigma, 1_200 + 3 * sigma);

        // Champion vs challenger is a plain JOIN: the served version beside each, and the rotated forest's class 1
        // probability is the forest's class 0 one.
        var disagreeing = await Database.DataSource.ScalarAsync<long>($"""
            SELECT count(*) FROM mad_out.{name} o JOIN mad_out.{name}__shadow s USING (id)
            WHERE s.served_version <> o.model_version OR s.shadow_version <> 2 OR s.error IS NOT NULL
               OR abs(s.probability_1 - o.probability_0) > 1e-6
            """);
        Assert.Equal(0, disagreeing);

        // The report: the shadow arm's rows, and its agreement with the served rows.
        var report = (await Database.DataSource.QueryAsync<(long Rows, double? Equal, double? Difference, string? Error)>(
            "SELECT rows_scored, share_equal, mean_absolute_difference, shadow_error FROM mad.deployment_report WHERE model = @model AND arm = 'shadow'",
            new { model })).Single();
        Assert.Equal(shadowRows, report.Rows);
        var expected = (await Database.DataSource.QueryAsync<(double Equal, double Difference)>($"""
            SELECT avg(CASE WHEN s.label = o.label THEN 1.0 ELSE 0.0 END)::float8,
                   avg((abs(s.probability_0 - o.probability_0) + abs(s.probability_1 - o.probability_1) + abs(s.probability_2 - o.probability_2)) / 3)::float8
            FROM mad_out.{name} o JOIN mad_out.{name}__shadow s USING (id)
            """)).Single();
        Assert.Equal(expected.Equal, report.Equal!.Value, 9);
        Assert.Equal(expected.Difference, report.Difference!.Value, 6);
        Assert.True(report.Equal < 1, "the rotated forest disagrees with the forest on some labels");
        Assert.Null(report.Error);
        Assert.Equal(shadowRows, await Database.DataSource.ScalarAsync<long>(
            "SELECT shadow_rows FROM mad.jobs WHERE id = (SELECT last_job FROM mad.prediction_tables WHERE name = @name)", new { name }));

        // A second refresh replaces the shadow rows with its own, as it replaces the served ones.
        await tables.RefreshAsync(name, cancellationToken: Ct);
        Assert.Equal(shadowRows, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow"));
        Assert.Equal(shadowRows, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_shadow.{name}"));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_shadow_that_cannot_load_leaves_the_served_refresh_intact_and_the_report_says_why()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_shadow(@model, 'production', 2);
            """, new { model });
        // Version 2's bytes go bad after it was validated (a damaged row, a restore gone wrong): ONNX Runtime refuses them.
        await Database.DataSource.ExecuteAsync("""
            ALTER TABLE mad.model_versions DISABLE TRIGGER USER;
            UPDATE mad.model_versions SET onnx = '\x0102030405'::bytea, sha256 = encode(sha256(random()::text::bytea), 'hex') WHERE model = @model AND version = 2;
            ALTER TABLE mad.model_versions ENABLE TRIGGER USER;
            """, new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 500);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(500, result.Rows);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        Assert.Equal([(1, "champion")], await Database.DataSource.QueryAsync<(int, string)>($"SELECT DISTINCT model_version, arm FROM mad_out.{name}"));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow"));
        var error = await Database.DataSource.ScalarAsync<string>(
            "SELECT shadow_error FROM mad.jobs WHERE id = (SELECT last_job FROM mad.prediction_tables WHERE name = @name)", new { name });
        Assert.Contains($"The shadow {model}@2 failed to load", error, StringComparison.Ordinal);
        Assert.Equal(error, await Database.DataSource.ScalarAsync<string>(
            "SELECT shadow_error FROM mad.deployment_report WHERE model = @model AND arm = 'shadow'", new { model }));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_task_of_more_shadow_rows_than_one_copy_holds_writes_each_once_beside_the_version_that_served_it()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 3, percent => 50);
            SELECT mad.deploy_shadow(@model, 'production', 2);
            """, new { model });
        // One task of 40,000 rows: its shadow rows are copied in two batches of 16,384 between the served rows' COPYs,
        // and the rest after them.
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 40_000);
        await BatchTables.SmallTasksAsync(Database.DataSource, 100_000);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(40_000, result.Rows);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        Assert.Equal(1, await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM mad.tasks WHERE job_id = (SELECT last_job FROM mad.prediction_tables WHERE name = @name)", new { name }));
        var (rows, distinct, wrong) = (await Database.DataSource.QueryAsync<(long, long, long)>($"""
            SELECT count(*), count(DISTINCT s.id),
                   count(*) FILTER (WHERE s.served_version IS DISTINCT FROM o.model_version OR s.shadow_version <> 2 OR s.error IS NOT NULL
                                       OR abs(s.probability_1 - o.probability_0) > 1e-6 AND o.model_version = 1)
            FROM mad_out.{name}__shadow s JOIN mad_out.{name} o USING (id)
            """)).Single();
        Assert.Equal((40_000L, 40_000L, 0L), (rows, distinct, wrong));
        Assert.Equal([(1, "champion"), (3, "canary")], await Database.DataSource.QueryAsync<(int, string)>(
            $"SELECT DISTINCT model_version, arm FROM mad_out.{name} ORDER BY 1"));
        Assert.Equal(40_000, await Database.DataSource.ScalarAsync<long>(
            "SELECT shadow_rows FROM mad.jobs WHERE id = (SELECT last_job FROM mad.prediction_tables WHERE name = @name)", new { name }));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_shadow_the_server_refuses_to_store_leaves_the_served_rows_whole_counted_once_and_the_report_says_why()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 3, percent => 50);
            SELECT mad.deploy_shadow(@model, 'production', 2);
            """, new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 2_000);
        await BatchTables.SmallTasksAsync(Database.DataSource, 700);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await tables.RefreshAsync(name, cancellationToken: Ct);
        Assert.Equal(2_000, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow"));
        // The storage changed under the sidecars (a superuser's constraint): every shadow row the next refresh writes
        // is refused, after served rows of each task were already copied in its transaction.
        await Database.DataSource.ExecuteAsync($"ALTER TABLE mad_shadow.{name} ADD CONSTRAINT refuses_all CHECK (shadow_version < 0) NOT VALID");

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(2_000, result.Rows);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        Assert.Equal([(1, "champion"), (3, "canary")], await Database.DataSource.QueryAsync<(int, string)>(
            $"SELECT DISTINCT model_version, arm FROM mad_out.{name} ORDER BY 1"));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow"));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_shadow.{name}"));
        var (rows, error) = (await Database.DataSource.QueryAsync<(long, string)>(
            "SELECT shadow_rows, shadow_error FROM mad.jobs WHERE id = (SELECT last_job FROM mad.prediction_tables WHERE name = @name)", new { name })).Single();
        Assert.Equal(0, rows);
        Assert.Contains($"The shadow's rows could not be written to mad_shadow.\"{name}\"", error, StringComparison.Ordinal);
        Assert.Contains("refuses_all", error, StringComparison.Ordinal);
        // The tasks ran again without the shadow: each served row was counted once into the drift windows, over both refreshes.
        Assert.Equal(4_000, await Database.DataSource.ScalarAsync<long>(
            "SELECT coalesce(sum(count), 0) FROM mad.profile_counts WHERE prediction_table = @name AND kind = 'input' AND column_name = 'sepal_length'", new { name }));
    }

    [Fact(Timeout = 120_000)]
    public async Task Only_the_readers_of_the_served_table_read_its_shadow_and_a_revoke_takes_both()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_shadow(@model, 'production', 2);
            """, new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 20);
        await using var roles = new HostileRoles(Database);
        var (owner, ownerSession) = await roles.LoginAsync("owner", "IN ROLE mad_user");
        var (friend, friendSession) = await roles.LoginAsync("friend", "IN ROLE mad_user");
        var (_, snoop) = await roles.LoginAsync("snoop", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {owner}; GRANT SELECT ON public.{source} TO {owner}");
        var name = Sql.UniqueName("owned");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @owner WHERE name = @name", new { owner, name });
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        Assert.Equal("done", (await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct))).State);
        Assert.Equal(20L, await ownerSession.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow"));

        // The snoop, a mad_user like the owner, tries the view, the rows under it, and the view's own gate.
        foreach (var attempt in new[]
                 {
                     $"SELECT * FROM mad_out.{name}__shadow",
                     $"SELECT count(*) FROM mad_out.{name}__shadow WHERE id = 1",
                     $"SELECT * FROM mad_shadow.{name}",
                     $"SELECT s.* FROM mad_out.{name} o JOIN mad_out.{name}__shadow s USING (id)",
                 })
        {
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await snoop.FailsAsync(attempt)).SqlState);
        }

        // Nor can the snoop write the shadow, or record one for a job.
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await snoop.FailsAsync($"INSERT INTO mad_out.{name}__shadow (id, shadow_version, served_version, scored_at) VALUES (1, 2, 1, now())")).SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await snoop.FailsAsync(
            "SELECT mad.record_shadow(1, gen_random_uuid(), 1, 'x')")).SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await snoop.FailsAsync(
            "SELECT * FROM mad.shadow_agreement(@model, 'production')", new { model })).SqlState);

        // The owner's grant on the served table lets the friend read the shadow too; the owner's REVOKE takes both, at once.
        await ownerSession.ExecuteAsync($"GRANT SELECT ON mad_out.{name} TO {friend}");
        Assert.Equal(20L, await friendSession.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}__shadow"));
        await ownerSession.ExecuteAsync($"REVOKE SELECT ON mad_out.{name} FROM {friend}");
        var denied = await friendSession.FailsAsync($"SELECT count(*) FROM mad_out.{name}__shadow");
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        Assert.Contains($"readable by the readers of mad_out.{name} only", denied.MessageText, StringComparison.Ordinal);
    }
}

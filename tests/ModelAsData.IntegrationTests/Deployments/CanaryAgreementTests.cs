using Dapper;
using Microsoft.Data.Sqlite;
using Npgsql;
using ModelAsData.Core.Deployments;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Postgres.Deployments;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// Agreement between champion and canary on PostgreSQL (043_2): a refresh under a canary also scores a sample of the
/// canary's keys with the champion and keeps only sums on the job; mad.deployment_report divides them over the
/// deployment's done jobs. The last test runs the same refresh on SQLite (019_m) and finds the same sample.
/// </summary>
public sealed class CanaryAgreementTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task A_canary_with_the_champions_bytes_agrees_fully_over_exactly_the_sampled_canary_keys()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        // Version 3 is version 1's bytes: a canary that cannot disagree.
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 3, percent => 50);
            """, new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3_000);
        await BatchTables.SmallTasksAsync(Database.DataSource, 700); // several tasks: their sums add up on the job
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);

        await tables.RefreshAsync(name, cancellationToken: Ct);

        // The sample, as docs/DEPLOYMENTS.md publishes it: canary keys whose bucket under seed XOR the salt is below 10 %.
        var sampled = await SampledCanaryKeysAsync(source, model);
        Assert.InRange(sampled, 100, 200); // ~150 of the ~1,500 canary keys
        var job = (await Database.DataSource.QueryAsync<(double? Percent, long Rows, long? Equal, string Differences, int Tasks)>("""
            SELECT j.agreement_percent, j.agreement_rows, j.agreement_equal, j.agreement_differences::text, j.tasks_total
            FROM mad.jobs j WHERE j.id = (SELECT last_job FROM mad.prediction_tables WHERE name = @name)
            """, new { name })).Single();
        Assert.True(job.Tasks > 1, "the refresh ran in several tasks");
        Assert.Equal((10.0, sampled, (long?)sampled), (job.Percent, job.Rows, job.Equal));
        Assert.Equal("""{"probability_0": 0, "probability_1": 0, "probability_2": 0}""", job.Differences);
        // Nothing of the comparison is stored per key: the served table holds one row per source row, as ever.
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);

        var canary = await CanaryArmAsync(model);
        Assert.Equal((1.0, 0.0, (long?)sampled), (canary.Equal, canary.Difference, canary.Compared));
        // Through the C# report (what `mad deploy status` prints) the same.
        var arm = (await new PostgresDeployments(registry).ReportAsync(model, "production", Ct)).Single(a => a.Arm == Arms.Canary);
        Assert.Equal((1.0, 0.0, (long?)sampled), (arm.ShareEqual, arm.MeanAbsoluteDifference, arm.RowsCompared));

        // As an attacker would type it: a mad_user may not record sums nor write them; a sidecar login without the
        // task's current lease (here: a done task, any token) adds nothing.
        await using var roles = new HostileRoles(Database);
        var (_, user) = await roles.LoginAsync("snoop", "IN ROLE mad_user");
        var (_, engine) = await roles.LoginAsync("engine", "IN ROLE mad_sidecar");
        var task = await Database.DataSource.ScalarAsync<long>(
            "SELECT min(t.id) FROM mad.tasks t WHERE t.job_id = (SELECT last_job FROM mad.prediction_tables WHERE name = @name)", new { name });
        const string Forge = """SELECT mad.record_agreement(@task, gen_random_uuid(), 1000000, 0, '{"probability_0": 1e6}')""";
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await user.FailsAsync(Forge, new { task })).SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await user.FailsAsync("UPDATE mad.jobs SET agreement_equal = 0")).SqlState);
        await engine.ExecuteAsync(Forge, new { task });
        Assert.Equal((1.0, 0.0, (long?)sampled), await CanaryArmAsync(model));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_canary_that_differs_shows_the_share_its_sampled_keys_agree_and_the_report_adds_up_the_deployments_jobs()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3_000);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        // The champion's predictions for every key, kept aside to compute the expected agreement independently.
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        await tables.RefreshAsync(name, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{name}_champion AS SELECT * FROM mad_out.{name}");
        Assert.Null((await CanaryArmAsync(model, expectRow: false)).Compared);

        // Version 2 is the rotated forest: its labels differ from the forest's on some keys.
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy_canary(@model, 'production', 2, percent => 50)", new { model });
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '30' WHERE name = 'canary_agreement_percent'");
        try
        {
            await tables.RefreshAsync(name, cancellationToken: Ct);
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '10' WHERE name = 'canary_agreement_percent'");
        }

        var expected = (await Database.DataSource.QueryAsync<(long Rows, double Equal, double Difference)>($"""
            SELECT count(*), avg(CASE WHEN o.label = c.label THEN 1.0 ELSE 0.0 END)::float8,
                   avg((abs(o.probability_0 - c.probability_0) + abs(o.probability_1 - c.probability_1) + abs(o.probability_2 - c.probability_2)) / 3)::float8
            FROM mad_out.{name} o JOIN public.{name}_champion c USING (id), mad.deployments d
            WHERE d.model = @model AND o.arm = 'canary' AND mad.bucket(d.seed # 6364136223846793005, mad.key_text(o.id::text)) < 0.30
            """, new { model })).Single();
        Assert.InRange(expected.Rows, 350, 550); // 30 % of ~1,500 canary keys
        // The rotated forest shifts the forest's classes, so its labels seldom agree; its probabilities differ.
        Assert.InRange(expected.Equal, 0.0, 0.5);
        Assert.True(expected.Difference > 0.1, $"mean absolute difference {expected.Difference}");
        var canary = await CanaryArmAsync(model);
        Assert.Equal(expected.Rows, canary.Compared);
        Assert.Equal(expected.Equal, canary.Equal!.Value, 9);
        Assert.Equal(expected.Difference, canary.Difference!.Value, 6);

        // A second refresh of the same rows compares the same keys again: the deployment's jobs add up, the shares stay.
        await tables.RefreshAsync(name, cancellationToken: Ct); // at the default 10 %: a subset of the 30 % keys
        var subset = (await Database.DataSource.QueryAsync<(long Rows, double Equal)>($"""
            SELECT count(*), sum(CASE WHEN o.label = c.label THEN 1.0 ELSE 0.0 END)::float8
            FROM mad_out.{name} o JOIN public.{name}_champion c USING (id), mad.deployments d
            WHERE d.model = @model AND o.arm = 'canary' AND mad.bucket(d.seed # 6364136223846793005, mad.key_text(o.id::text)) < 0.10
            """, new { model })).Single();
        var both = await CanaryArmAsync(model);
        Assert.Equal(expected.Rows + subset.Rows, both.Compared);
        Assert.Equal((expected.Equal * expected.Rows + subset.Equal) / (expected.Rows + subset.Rows), both.Equal!.Value, 9);

        // A new deployment (a new seed) starts its own agreement: the old jobs are not its.
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.abort_deployment(@model, 'production');
            SELECT mad.deploy_canary(@model, 'production', 3, percent => 50);
            """, new { model });
        Assert.Null((await CanaryArmAsync(model)).Compared);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_bad_sample_setting_stops_the_refresh_with_what_to_type()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 100);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 2, percent => 50);
            UPDATE mad.settings SET value = 'ten' WHERE name = 'canary_agreement_percent';
            """, new { model });
        try
        {
            var refused = await Database.DataSource.FailsAsync("SELECT mad.refresh(@name)", new { name });
            Assert.Contains("The setting canary_agreement_percent is 'ten', not a percent in [0, 100]", refused.MessageText, StringComparison.Ordinal);
            Assert.Contains("UPDATE mad.settings SET value = '10' WHERE name = 'canary_agreement_percent'", refused.Hint, StringComparison.Ordinal);
            Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.jobs WHERE prediction_table = @name", new { name }));

            // 0 turns the comparison off: the refresh scores as before and the canary arm has no agreement.
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '0' WHERE name = 'canary_agreement_percent'");
            await tables.RefreshAsync(name, cancellationToken: Ct);
            Assert.Equal((null, null, null), await CanaryArmAsync(model));
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '10' WHERE name = 'canary_agreement_percent'");
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task The_sample_is_the_same_keys_on_both_stores()
    {
        const long seed = 424_242;
        // PostgreSQL: champion 1, the rotated forest as a 50 % canary, the deployment's seed fixed for the test.
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 2, percent => 50);
            UPDATE mad.deployments SET seed = @seed WHERE model = @model;
            """, new { model, seed });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3_000);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await tables.RefreshAsync(name, cancellationToken: Ct);
        var postgres = await CanaryArmAsync(model);
        var postgresSample = (await Database.DataSource.QueryAsync<long>($"""
            SELECT id FROM {source} WHERE mad.bucket(@seed # 6364136223846793005, mad.key_text(id::text)) < 0.10 ORDER BY id
            """, new { seed })).ToList();

        // SQLite: the same models, rows and seed.
        var path = Path.Combine(Path.GetTempPath(), $"mad-canary-agreement-{Guid.NewGuid():N}.db");
        try
        {
            await using (var sqlite = await SqliteModelRegistry.OpenAsync(path, Ct))
            {
                SqlitePredictFunctions.Register(sqlite.Connection);
                var sqliteSample = await SqliteCanaryAgreementTests.PrepareAsync(sqlite, seed);
                var report = await new SqliteDeployments(sqlite).ReportAsync("churn", "production", Ct);
                var arm = report.Single(a => a.Arm == Arms.Canary);

                // The sample by C#, by SQLite's bucket() and by mad.bucket: the same keys.
                var csharp = Enumerable.Range(1, 3_000).Where(k => CanaryAgreement.Samples(seed, StickyBucket.KeyText((long)k), 10)).Select(k => (long)k).ToList();
                Assert.Equal(csharp, postgresSample);
                Assert.Equal(csharp, sqliteSample);
                // Both refreshes compared the same canary keys, and found the same agreement on them.
                var canaryKeys = csharp.Count(k => StickyBucket.InCanary(seed, StickyBucket.KeyText(k), 50));
                Assert.Equal((long?)canaryKeys, postgres.Compared);
                Assert.Equal(postgres.Compared, arm.RowsCompared);
                Assert.Equal(postgres.Equal!.Value, arm.ShareEqual!.Value, 9);
                Assert.Equal(postgres.Difference!.Value, arm.MeanAbsoluteDifference!.Value, 5);
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var file in new[] { path, path + "-wal", path + "-shm" })
            {
                File.Delete(file);
            }
        }
    }

    private async Task<long> SampledCanaryKeysAsync(string source, string model) =>
        await Database.DataSource.ScalarAsync<long>($"""
            SELECT count(*) FROM {source} f, mad.deployments d
            WHERE d.model = @model AND mad.bucket(d.seed, mad.key_text(f.id::text)) < d.canary_percent / 100
              AND mad.bucket(d.seed # 6364136223846793005, mad.key_text(f.id::text)) < 0.10
            """, new { model });

    private async Task<(double? Equal, double? Difference, long? Compared)> CanaryArmAsync(string model, bool expectRow = true)
    {
        var rows = (await Database.DataSource.QueryAsync<(double? Equal, double? Difference, long? Compared)>(
            "SELECT share_equal, mean_absolute_difference, rows_compared FROM mad.deployment_report WHERE model = @model AND arm = 'canary'", new { model })).ToList();
        Assert.Equal(expectRow ? 1 : 0, rows.Count);
        return expectRow ? rows[0] : (null, null, null);
    }
}

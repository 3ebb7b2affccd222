using ModelAsData.Core.Deployments;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Postgres.Deployments;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// Legacy replacement (025_3): a source column holding a legacy system's prediction is named, and the deployment
/// report shows each arm's agreement with it; it is read with the caller's own rights, never the definer's.
/// </summary>
public sealed class LegacyComparisonTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task The_report_shows_each_arms_agreement_with_the_legacy_column_labels_as_share_equal_values_as_mean_absolute_difference()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_shadow(@model, 'production', 2)", new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 400);
        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{source} ADD COLUMN legacy_class bigint, ADD COLUMN legacy_score real");
        var labels = Sql.UniqueName("labels");
        var values = Sql.UniqueName("values");
        await BatchTables.CreateAsync(tables, labels, source, model);
        await BatchTables.CreateAsync(tables, values, source, model);
        await tables.RefreshAsync(labels, cancellationToken: Ct);
        // The legacy system: the champion's label on three keys in four, another label on the fourth (NULL on some:
        // not compared); a score 0.25 above the champion's class 0 probability.
        await Database.DataSource.ExecuteAsync($"""
            UPDATE public.{source} f SET legacy_class = CASE WHEN f.id % 4 = 0 THEN (o.label + 1) % 3 ELSE o.label END,
                                         legacy_score = o.probability_0 + 0.25
            FROM mad_out.{labels} o WHERE o.id = f.id AND f.id % 10 <> 7
            """);
        await tables.RefreshAsync(values, cancellationToken: Ct);

        var bad = await Database.DataSource.FailsAsync("SELECT mad.set_legacy_column(@labels, 'legacy')", new { labels });
        Assert.Contains("has no column legacy; its columns are id, sepal_length", bad.MessageText, StringComparison.Ordinal);
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.set_legacy_column(@labels, 'legacy_class');
            SELECT mad.set_legacy_column(@values, 'legacy_score', output => 'probability_0');
            """, new { labels, values });
        Assert.Equal(("legacy_class", "label"), (await Database.DataSource.QueryAsync<(string, string)>(
            "SELECT legacy_column, legacy_output FROM mad.prediction_tables WHERE name = @labels", new { labels })).Single());

        var expected = await Database.DataSource.ScalarAsync<double>($"""
            SELECT avg(CASE WHEN o.label = f.legacy_class THEN 1.0 ELSE 0.0 END)::float8 FROM public.{source} f JOIN mad_out.{labels} o USING (id) WHERE f.legacy_class IS NOT NULL
            """);
        Assert.InRange(expected, 0.70, 0.80);
        var champion = (await Database.DataSource.QueryAsync<(string Arm, int Version, long Rows, double? Equal, double? Difference)>(
            "SELECT * FROM mad.legacy_agreement(@labels)", new { labels })).ToList();
        Assert.Equal(("champion", 1, 360L), (champion[0].Arm, champion[0].Version, champion[0].Rows));
        Assert.Equal(expected, champion[0].Equal!.Value, 9);
        Assert.Null(champion[0].Difference);
        Assert.Equal(("shadow", 2), (champion[1].Arm, champion[1].Version));  // the shadow's rows are compared too
        var score = (await Database.DataSource.QueryAsync<(string Arm, int Version, long Rows, double? Equal, double? Difference)>(
            "SELECT * FROM mad.legacy_agreement(@values) WHERE arm = 'champion'", new { values })).Single();
        Assert.Equal(0.25, score.Difference!.Value, 5);

        // The report: per arm, both tables' agreement (labels from one, values from the other).
        var report = (await Database.DataSource.QueryAsync<(string Arm, double? Equal, double? Difference)>(
            "SELECT arm, legacy_share_equal, legacy_mean_absolute_difference FROM mad.deployment_report WHERE model = @model ORDER BY arm", new { model })).ToList();
        Assert.Equal(["champion", "shadow"], report.Select(r => r.Arm));
        Assert.Equal(expected, report[0].Equal!.Value, 9);
        Assert.Equal(0.25, report[0].Difference!.Value, 5);
        Assert.NotNull(report[1].Equal);

        // What `mad tables legacy` and `mad deploy status` read: the same numbers through PostgresDeployments.
        var deployments = new PostgresDeployments(registry);
        Assert.Equal(new LegacyColumn(values, "legacy_score", "probability_0"), await deployments.GetLegacyColumnAsync(values, Ct));
        var read = await deployments.LegacyAgreementAsync(labels, Ct);
        Assert.Equal(champion.Select(c => (c.Arm, c.Version, c.Rows, c.Equal)), read.Select(r => (r.Arm, r.ModelVersion, r.RowsCompared, r.ShareEqual)));
        var arms = await deployments.ReportAsync(model, "production", Ct);
        Assert.Equal(expected, arms[0].LegacyShareEqual!.Value, 9);
        Assert.Equal(0.25, arms[0].LegacyMeanAbsoluteDifference!.Value, 5);
        var missing = await Assert.ThrowsAsync<ModelAsDataException>(() => deployments.LegacyAgreementAsync("no_such_table", Ct));
        Assert.Equal(ErrorCode.NotFound, missing.Code);
        Assert.StartsWith("No prediction table 'no_such_table' (tables: ", missing.Message, StringComparison.Ordinal);

        // NULL forgets it.
        await Database.DataSource.ExecuteAsync("SELECT mad.set_legacy_column(@labels, NULL)", new { labels });
        Assert.Empty(await Database.DataSource.QueryAsync<string>("SELECT arm FROM mad.legacy_agreement(@labels)", new { labels }));
    }

    [Fact(Timeout = 120_000)]
    public async Task Naming_a_legacy_column_never_lets_anyone_read_a_column_they_may_not_select()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 30);
        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{source} ADD COLUMN legacy_class bigint DEFAULT 1, ADD COLUMN secret bigint DEFAULT 2");
        await using var roles = new HostileRoles(Database);
        var (owner, ownerSession) = await roles.LoginAsync("owner", "IN ROLE mad_user");
        var (_, snoop) = await roles.LoginAsync("snoop", "IN ROLE mad_user");
        // The owner reads every column of the source but secret.
        await Database.DataSource.ExecuteAsync($"""
            GRANT USAGE ON SCHEMA public TO {owner};
            GRANT SELECT (id, sepal_length, sepal_width, petal_length, petal_width, legacy_class) ON public.{source} TO {owner};
            """);
        var name = Sql.UniqueName("owned");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @owner WHERE name = @name", new { owner, name });
        await using (var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString))
        {
            Assert.Equal("done", (await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct))).State);
        }

        // The owner names the column it may not read: refused, nothing recorded.
        var named = await ownerSession.FailsAsync("SELECT mad.set_legacy_column(@name, 'secret')", new { name });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, named.SqlState);
        Assert.Contains("may not SELECT it", named.MessageText, StringComparison.Ordinal);
        // The snoop, a mad_user like the owner, may name none on a table it does not own.
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await snoop.FailsAsync("SELECT mad.set_legacy_column(@name, 'legacy_class')", new { name })).SqlState);
        Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT legacy_column FROM mad.prediction_tables WHERE name = @name", new { name }));

        // The owner's readable column: the owner reads the agreement; the snoop, who reads neither, does not.
        await ownerSession.ExecuteAsync("SELECT mad.set_legacy_column(@name, 'legacy_class')", new { name });
        Assert.Equal(30L, await ownerSession.ScalarAsync<long>("SELECT rows_compared FROM mad.legacy_agreement(@name)", new { name }));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await snoop.FailsAsync("SELECT * FROM mad.legacy_agreement(@name)", new { name })).SqlState);
        // The report's part leaves out what the caller may not read, rather than refusing.
        Assert.Empty(await snoop.QueryAsync<string>("SELECT prediction_table FROM mad.deployment_legacy(@model, 'production')", new { model }));

        // An administrator, who may read secret, names it: the agreement is still read with each caller's own rights,
        // so the owner (and the snoop) get permission denied, not the share of rows whose secret equals the label.
        await Database.DataSource.ExecuteAsync("SELECT mad.set_legacy_column(@name, 'secret')", new { name });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await ownerSession.FailsAsync("SELECT * FROM mad.legacy_agreement(@name)", new { name })).SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await snoop.FailsAsync("SELECT * FROM mad.legacy_agreement(@name)", new { name })).SqlState);
        Assert.Empty(await ownerSession.QueryAsync<string>("SELECT prediction_table FROM mad.deployment_legacy(@model, 'production')", new { model }));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await ownerSession.FailsAsync("SELECT * FROM mad.deployment_report")).SqlState);
        Assert.Equal(1L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.legacy_agreement(@name)", new { name }));
    }
}

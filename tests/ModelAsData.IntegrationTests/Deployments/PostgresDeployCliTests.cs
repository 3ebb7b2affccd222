using ModelAsData.Postgres.Jobs;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary><c>mad deploy</c> against PostgreSQL, with the same words as on SQLite.</summary>
public sealed class PostgresDeployCliTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task Mad_deploy_rolls_a_canary_with_steps_reports_it_and_aborts_it()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));

        Assert.Contains($"{model}@production: version 1", (await RunAsync("deploy", model, "production", "--version", "1")).Output, StringComparison.Ordinal);
        var canary = await RunAsync("deploy", model, "production", "--canary", "2", "--percent", "10", "--steps", "5,25,50,100", "--every", "1h");
        Assert.Equal(0, canary.ExitCode);
        Assert.Contains("canary version 2 at 10 % of keys", canary.Output, StringComparison.Ordinal);
        Assert.Contains("steps 5,25,50,100 every 01:00:00", canary.Output, StringComparison.Ordinal);
        var status = await RunAsync("deploy", "status", model, "production");
        Assert.Equal(0, status.ExitCode);
        Assert.Contains("canary", status.Output, StringComparison.Ordinal);
        Assert.Contains("90 %", status.Output, StringComparison.Ordinal);
        var second = await RunAsync("deploy", model, "production", "--canary", "3", "--percent", "5");
        Assert.NotEqual(0, second.ExitCode);
        Assert.Contains("already runs a canary", second.Output, StringComparison.Ordinal);
        Assert.Contains($"{model}@production: version 1", (await RunAsync("deploy", "abort", model, "production")).Output, StringComparison.Ordinal);
        var promote = await RunAsync("deploy", "promote", model, "production");
        Assert.NotEqual(0, promote.ExitCode);
        Assert.Contains("runs no canary to promote", promote.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Mad_tables_legacy_names_shows_and_forgets_the_legacy_column_through_mad_set_legacy_column()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var source = await Batch.BatchTables.CreateFlowersAsync(Database.DataSource, 20);
        await Database.DataSource.ExecuteAsync($"ALTER TABLE public.{source} ADD COLUMN legacy_class bigint");
        var name = Sql.UniqueName("legacy");
        await Batch.BatchTables.CreateAsync(new PostgresPredictionTables(registry), name, source, model);

        var named = await RunAsync("tables", "legacy", name, "legacy_class");
        Assert.Equal(0, named.ExitCode);
        Assert.Contains($"{name}: legacy column legacy_class, compared with label.", named.Output, StringComparison.Ordinal);
        Assert.Contains("No rows compared yet", named.Output, StringComparison.Ordinal); // never refreshed
        Assert.Equal(("legacy_class", "label"), (await Database.DataSource.QueryAsync<(string, string)>(
            "SELECT legacy_column, legacy_output FROM mad.prediction_tables WHERE name = @name", new { name })).Single());
        var unknown = await RunAsync("tables", "legacy", name, "old_flag");
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("has no column old_flag; its columns are id, sepal_length", unknown.Output, StringComparison.Ordinal);
        var wrong = await RunAsync("tables", "legacy", source, "legacy_class");
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains($"No prediction table '{source}'", wrong.Output, StringComparison.Ordinal);
        Assert.Contains("names no legacy column", (await RunAsync("tables", "legacy", name, "--forget")).Output, StringComparison.Ordinal);
        Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT legacy_column FROM mad.prediction_tables WHERE name = @name", new { name }));
    }

    [Fact(Timeout = 120_000)]
    public async Task Mad_deploy_history_lists_the_changes_and_answers_what_was_deployed_at_a_moment_as_deployment_at()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await RunAsync("deploy", model, "production", "--version", "1");
        await Task.Delay(50, Ct);
        var seed = await Database.DataSource.ScalarAsync<long>("SELECT mad.deploy_canary(@model, 'production', 2, percent => 10, reason => 'try v2')", new { model });
        await Task.Delay(50, Ct);
        var running = await Database.DataSource.ScalarAsync<DateTime>("SELECT clock_timestamp()");
        await Task.Delay(50, Ct);
        await RunAsync("deploy", "promote", model, "production");

        var history = await RunAsync("deploy", "history", model, "production");
        Assert.Equal(0, history.ExitCode);
        Assert.Matches(@"promote\W+2\W+-", history.Output);
        Assert.Matches(@"canary\W+1\W+2 at 10 %.*try v2", history.Output);
        var at = await RunAsync("deploy", "history", model, "production", "--at", new DateTimeOffset(running, TimeSpan.Zero).ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0, at.ExitCode);
        Assert.Contains($"{model}@production: version 1, canary version 2 at 10 % of keys (seed {seed})", at.Output, StringComparison.Ordinal);
        // The same answer as mad.deployment_at.
        Assert.Equal((1, 2, 10.0, seed), (await Database.DataSource.QueryAsync<(int, int, double, long)>(
            "SELECT version, canary_version, canary_percent, seed FROM mad.deployment_at(@model, 'production', @running)", new { model, running })).Single());
        var missing = await RunAsync("deploy", "history", model, "staging");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("has no alias", missing.Output, StringComparison.Ordinal);
    }
}

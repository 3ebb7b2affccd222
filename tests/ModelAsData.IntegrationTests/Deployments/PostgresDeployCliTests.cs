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
}

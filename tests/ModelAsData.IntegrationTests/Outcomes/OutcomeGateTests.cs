namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// The outcome gate (027_3): a rolling canary whose metric on outcomes is worse than the champion's by more than the
/// margin rolls back by itself at its next step; one as good as the champion steps on. The step is taken by a login
/// that holds only mad_sidecar, as production runs it: the gate reads the served history as mad's owner on its behalf
/// (042_2), which a superuser sidecar never showed.
/// </summary>
public sealed class OutcomeGateTests(PostgresDatabase database) : DatabaseTests(database)
{
    private async Task<string> StepAsync(string model)
    {
        await using var roles = new Hostile.HostileRoles(Database);
        var (_, engine) = await roles.LoginAsync("engine", "IN ROLE mad_sidecar");
        await Database.DataSource.ExecuteAsync($"""
            SELECT mad.set_outcome_gate('{model}', 'production', 'accuracy', margin => 0.05);
            UPDATE mad.deployments SET next_step_at = now() - interval '1 second' WHERE model = '{model}';
            """);
        Assert.Equal(1, await engine.ScalarAsync<int>("SELECT mad.advance_deployments('gate_test')"));
        return await Database.DataSource.ScalarAsync<string>(
            $"SELECT kind || ': ' || reason FROM mad.deployment_history WHERE model = '{model}' ORDER BY changed_at DESC, id DESC LIMIT 1");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_worse_canary_rolls_back_by_itself()
    {
        var (model, name, _) = await CompareTests.DeployedAsync(Database, canaryRight: 80, rolling: true);   // 0.4 against 0.6

        var last = await StepAsync(model);

        Assert.Null(await Database.DataSource.ScalarAsync<int?>($"SELECT canary_version FROM mad.deployments WHERE model = '{model}'"));
        Assert.Contains("gate outcome failed", last, StringComparison.Ordinal);
        Assert.Contains($"on {name} the canary's accuracy is 0.4000 against the champion's 0.6000", last, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task An_equal_canary_advances()
    {
        var (model, _, _) = await CompareTests.DeployedAsync(Database, canaryRight: 120, rolling: true);

        var last = await StepAsync(model);

        Assert.Equal(100.0, await Database.DataSource.ScalarAsync<double>($"SELECT canary_percent FROM mad.deployments WHERE model = '{model}'"));
        Assert.StartsWith("step: step to 100", last, StringComparison.Ordinal);
        // Removing the gate is a NULL metric; a mad_user may not set one.
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_outcome_gate('{model}', 'production', NULL)");
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad.outcome_gates WHERE model = '{model}'"));
        await using var roles = new Hostile.HostileRoles(Database);
        var (_, user) = await roles.LoginAsync("gatekeeper", "IN ROLE mad_user");
        var denied = await user.FailsAsync($"SELECT mad.set_outcome_gate('{model}', 'production', 'accuracy', 1)");
        Assert.Equal(Npgsql.PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
    }
}

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

    /// <summary>A month of the champion alone, before the canary: <paramref name="right"/> of its 2,000 rows labelled right.</summary>
    private async Task ChampionAloneInOctoberAsync(string name, string outcomes, bool right)
    {
        await OutcomeTables.ServeAsync(Database.DataSource, name, string.Join(", ", Enumerable.Range(10_000, 2_000).Select(i =>
            $"('{i}', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-10-01 10:00+00')")));
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} SELECT g, '{(right ? 1 : 0)}', '2026-10-01 12:00+00' FROM generate_series(10000, 11999) g");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_long_good_champion_history_does_not_roll_back_a_canary_as_good_since_the_split()
    {
        // Since the split both are right on 120 of 200 (0.6); over everything served the champion would be right on
        // 2,120 of 2,200 (0.96) and the canary 0.36 below it.
        var (model, name, outcomes) = await CompareTests.DeployedAsync(Database, canaryRight: 120, rolling: true);
        await ChampionAloneInOctoberAsync(name, outcomes, right: true);

        var last = await StepAsync(model);

        Assert.StartsWith("step: step to 100", last, StringComparison.Ordinal);
        Assert.Equal(100.0, await Database.DataSource.ScalarAsync<double>($"SELECT canary_percent FROM mad.deployments WHERE model = '{model}'"));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_long_bad_champion_history_does_not_pass_a_canary_worse_since_the_split()
    {
        // Since the split the canary is right on 80 of 200 (0.4) against 0.6; over everything served the champion
        // would be right on 120 of 2,200 (0.05) and the canary far ahead.
        var (model, name, outcomes) = await CompareTests.DeployedAsync(Database, canaryRight: 80, rolling: true);
        await ChampionAloneInOctoberAsync(name, outcomes, right: false);

        var last = await StepAsync(model);

        Assert.Null(await Database.DataSource.ScalarAsync<int?>($"SELECT canary_version FROM mad.deployments WHERE model = '{model}'"));
        Assert.Contains($"on {name} the canary's accuracy is 0.4000 against the champion's 0.6000", last, StringComparison.Ordinal);
        // The rollback is a new split: from now on, only what is served after it counts.
        Assert.True(await Database.DataSource.ScalarAsync<bool>($"SELECT mad.split_began('{model}', 'production') > '{CompareTests.DeployedAt:u}'"));
    }
}

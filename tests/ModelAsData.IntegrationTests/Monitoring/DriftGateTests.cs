using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Deployments;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// The drift gate (026_1): a rolling canary whose own traffic drifts from its baseline is ended by the sidecars at its
/// next step; one that does not drift steps on. Only mad_admin turns the gate on or off.
/// </summary>
public sealed class DriftGateTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 180_000)]
    public async Task A_canary_whose_traffic_drifts_is_rolled_back_at_its_next_step()
    {
        var (model, change) = await CanaryStepAsync(shift: 1.5);

        Assert.Equal("gate", change.Kind);
        Assert.Null(change.Canary);
        Assert.Contains("gate drift failed: the canary (version 2) drifted on", change.Reason, StringComparison.Ordinal);
        Assert.Contains("(Holm-Bonferroni at 0.01 over 8 tests)", change.Reason, StringComparison.Ordinal);
        Assert.Contains("sepal_length", change.Reason, StringComparison.Ordinal);
        Assert.Null(await Database.DataSource.ScalarAsync<int?>("SELECT canary_version FROM mad.deployments WHERE model = @model", new { model }));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_canary_whose_traffic_does_not_drift_steps_on()
    {
        var (model, change) = await CanaryStepAsync(shift: 0);

        Assert.Equal("step", change.Kind);
        Assert.Equal(2, change.Canary);
        Assert.Equal(60.0, await Database.DataSource.ScalarAsync<double>("SELECT canary_percent FROM mad.deployments WHERE model = @model", new { model }));
    }

    /// <summary>
    /// 044_1: the gate holds its false refusals at 1 % family-wise (Holm-Bonferroni over columns × ks_p, chi2_p), so
    /// a canary with no drift passes: 20 fixed seeds, each a fresh sample of the baseline's distribution and its own
    /// 30 % of keys. A moderately shifted canary (0.5 on sepal_length, a seventh of its range) is still refused on each
    /// of 5 seeds. Fixed seeds: the same rows and keys every run, so this is deterministic.
    /// </summary>
    [Fact(Timeout = 600_000)]
    public async Task The_gate_passes_unshifted_canaries_over_20_seeds_and_refuses_shifted_ones()
    {
        // The refreshes need a sidecar; the canary's steps are an hour apart, so it takes none during the test.
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString,
            new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5), HeartbeatInterval = TimeSpan.FromSeconds(1) });
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        await registry.WaitForValidationAsync(model, 2, TimeSpan.FromSeconds(30), Ct);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        var training = Sql.UniqueName("training");
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 2_000, seed: 22);
        await BatchTables.CreateAsync(tables, Sql.UniqueName("mapping"), training, model); // maps the inputs to columns; never refreshed
        await Database.DataSource.ExecuteAsync($"""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.set_baseline(@model, 2, 'public.{training}');
            SELECT mad.set_drift_gate(@model, 'production');
            SELECT mad.deploy_canary(@model, 'production', 2, steps => ARRAY[30, 60, 100]::float8[], step_every => '1 hour');
            """, new { model });

        var uncorrected = 0;
        foreach (var (seed, shift) in Enumerable.Range(1, 20).Select(s => (s, 0.0)).Concat(Enumerable.Range(21, 5).Select(s => (s, 0.5))))
        {
            var (source, name) = (Sql.UniqueName("flowers"), Sql.UniqueName("scores"));
            await DriftRows.CreatePostgresAsync(Database.DataSource, source, 2_000, seed: 100 + seed, shift: shift);
            await BatchTables.CreateAsync(tables, name, source, model);
            await Database.DataSource.ExecuteAsync("UPDATE mad.deployments SET seed = @seed WHERE model = @model", new { model, seed });
            await tables.RefreshAsync(name, cancellationToken: Ct);

            var refusal = await Database.DataSource.ScalarAsync<string?>("SELECT mad.gate_drift(@model, 'production')", new { model });
            var smallest = await Database.DataSource.QueryAsync<(string Column, string Metric, double P, double Adjusted, long Tests, long Rows)>(
                "SELECT column_name, metric, p, adjusted_p, tests, n_current FROM mad.drift_gate_tests(@model, 'production', 2, now() - interval '1 hour', 100) LIMIT 1",
                new { model });
            // What 026_1's rule (any metric drifted on its own) would have said.
            var anyMetric = await Database.DataSource.ScalarAsync<long>(
                "SELECT count(*) FROM mad.drift_gate_metrics(@model, 'production', 2, now() - interval '1 hour', 100) WHERE drifted", new { model });
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"seed {seed} shift {shift}: smallest p {smallest[0].Metric} of {smallest[0].Column} {smallest[0].P:G3} (adjusted {smallest[0].Adjusted:G3} over {smallest[0].Tests}, {smallest[0].Rows} rows), " +
                $"metrics drifted alone {anyMetric}; gate: {refusal ?? "passes"}");
            Assert.Equal(8, smallest[0].Tests); // 4 columns × (ks_p, chi2_p), one prediction table with counts
            if (shift == 0)
            {
                Assert.Null(refusal);
                uncorrected += anyMetric > 0 ? 1 : 0;
            }
            else
            {
                Assert.NotNull(refusal);
                Assert.Contains($"{name}.sepal_length", refusal, StringComparison.Ordinal);
                Assert.Contains("Holm-Bonferroni at 0.01 over 8 tests", refusal, StringComparison.Ordinal);
            }

            // The next seed is judged on its own traffic alone.
            await Database.DataSource.ExecuteAsync("DELETE FROM mad.profile_counts WHERE prediction_table = @name", new { name });
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"unshifted seeds 026_1's any-metric rule would have refused: {uncorrected} of 20");
    }

    [Fact(Timeout = 60_000)]
    public async Task Only_mad_admin_turns_a_drift_gate_on_or_off()
    {
        await using var roles = new HostileRoles(Database);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.set_drift_gate(@model, 'production')", new { model });
        var (_, attacker) = await roles.LoginAsync("attacker", "IN ROLE mad_user");

        foreach (var call in new[]
        {
            "SELECT mad.set_drift_gate(@model, 'production', false)",
            "SELECT mad.set_drift_gate(@model, 'production')",
            "DELETE FROM mad.drift_gates",
            "INSERT INTO mad.drift_gates (model, alias) VALUES (@model, 'production')",
            "UPDATE mad.drift_gates SET alias = 'production'",
            "SELECT mad.gate_drift(@model, 'production')",
            "SELECT * FROM mad.drift_gate_tests(@model, 'production', 2, now() - interval '1 day', 0)",
            "SELECT * FROM mad.drift_gate_metrics(@model, 'production', 2, now() - interval '1 day', 0)",
            "UPDATE mad.deployment_gates SET gate = 'mad.bucket(bigint, text)' WHERE name = 'drift'",
            "DELETE FROM mad.deployment_gates WHERE name = 'drift'",
        })
        {
            var refused = await attacker.FailsAsync(call, new { model });
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
        }

        Assert.Equal(1, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.drift_gates WHERE model = @model", new { model }));
        Assert.Equal(1, await attacker.ScalarAsync<long>("SELECT count(*) FROM mad.drift_gates WHERE model = @model", new { model })); // it may see it
        Assert.False(await Database.DataSource.ScalarAsync<bool>("SELECT mad.set_drift_gate(@model, 'production', false)", new { model }));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.drift_gates WHERE model = @model", new { model }));
        var missing = await Database.DataSource.FailsAsync("SELECT mad.set_drift_gate(@model, 'nosuch')", new { model });
        Assert.Contains("has no alias 'nosuch'", missing.MessageText, StringComparison.Ordinal);
    }

    /// <summary>
    /// A rolling canary (30 → 60 → 100 %) of version 2 with the drift gate on, version 2's baseline from unshifted
    /// rows, a refresh of rows shifted by <paramref name="shift"/>; then its step falls due and a sidecar (heartbeat
    /// every 200 ms) takes it. Returns the change the step made.
    /// </summary>
    private async Task<(string Model, (string Kind, int? Canary, string Reason) Change)> CanaryStepAsync(double shift)
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString,
            new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5), HeartbeatInterval = TimeSpan.FromMilliseconds(200) });
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        await registry.WaitForValidationAsync(model, 2, TimeSpan.FromSeconds(30), Ct);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        var (training, source, name) = (Sql.UniqueName("training"), Sql.UniqueName("flowers"), Sql.UniqueName("scores"));
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 2_000, seed: 22); // unshifted, the rows themselves
        await DriftRows.CreatePostgresAsync(Database.DataSource, source, 2_000, seed: 22, shift: shift);
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync($"""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.set_baseline(@model, 2, 'public.{training}');
            SELECT mad.set_drift_gate(@model, 'production');
            SELECT mad.deploy_canary(@model, 'production', 2, steps => ARRAY[30, 60, 100]::float8[], step_every => '1 hour');
            -- A fixed seed, so the canary's 30 % of keys are the same in every run: with a new seed each run, an
            -- unshifted sample of 600 rows would now and then pass one of the 1 % noise thresholds by chance.
            UPDATE mad.deployments SET seed = 7 WHERE model = @model;
            """, new { model });

        await tables.RefreshAsync(name, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync("UPDATE mad.deployments SET next_step_at = now() - interval '1 second' WHERE model = @model", new { model });

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var changes = await Database.DataSource.QueryAsync<(string Kind, int? Canary, string Reason)>(
                "SELECT kind, canary_version, coalesce(reason, '') FROM mad.deployment_history WHERE model = @model AND kind IN ('gate', 'step') ORDER BY id", new { model });
            if (changes.Count > 0)
            {
                TestContext.Current.TestOutputHelper?.WriteLine($"{changes[0].Kind}: {changes[0].Reason}");
                return (model, changes[0]);
            }

            await Task.Delay(100, Ct);
        }

        throw new TimeoutException("The sidecar did not take the due step in 30 s.");
    }
}

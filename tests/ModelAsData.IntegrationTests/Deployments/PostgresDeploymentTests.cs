using Dapper;
using ModelAsData.Core.Deployments;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.IntegrationTests.Postgres;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>mad.bucket, mad.deploy and friends as a DBA types them, and as an attacker holding mad_user does.</summary>
public sealed class PostgresDeploymentTests(PostgresDatabase database) : DatabaseTests(database)
{
    /// <summary>Computed with `printf '%s' '7:42' | sha256sum | cut -c1-8` (and python's hashlib): see StickyBucketTests.</summary>
    [Theory]
    [InlineData(7L, "42", 1874087293L)]
    [InlineData(7L, "alice", 2510606425L)]
    [InlineData(123456789L, "42", 4130055883L)]
    [InlineData(-5L, "0", 4262724648L)]
    [InlineData(7L, "Zoë", 2693480954L)]
    public async Task Mad_bucket_gives_the_golden_values_and_the_same_as_csharp(long seed, string keyText, long expected)
    {
        var bucket = await Database.DataSource.ScalarAsync<double>("SELECT mad.bucket(@seed, @keyText)", new { seed, keyText });
        Assert.Equal(expected / 4294967296.0, bucket);
        Assert.Equal(StickyBucket.Of(seed, keyText), bucket);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_composite_key_joins_its_values_with_the_unit_separator()
    {
        Assert.Equal(383116829 / 4294967296.0, await Database.DataSource.ScalarAsync<double>("SELECT mad.bucket(7, mad.key_text(42::text, 'north'))"));
        Assert.Equal("42\u001Fnorth", await Database.DataSource.ScalarAsync<string>("SELECT mad.key_text(42::text, 'north')"));
        var nullKey = await Database.DataSource.FailsAsync("SELECT mad.key_text('1', NULL)");
        Assert.Contains("A key value is NULL", nullKey.MessageText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_canary_share_of_100000_keys_is_within_three_sigma_and_agrees_with_csharp_on_every_key()
    {
        var inCanary = await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM generate_series(1, 100000) k WHERE mad.bucket(20261203, k::text) < 10 / 100.0");
        var p = 0.10;
        var sigma = Math.Sqrt(100_000 * p * (1 - p));
        Assert.InRange(inCanary, 100_000 * p - 3 * sigma, 100_000 * p + 3 * sigma);
        var expected = Enumerable.Range(1, 100_000).Count(k => StickyBucket.InCanary(20261203, StickyBucket.KeyText(k), 10));
        Assert.Equal(expected, inCanary);
        var sample = await Database.DataSource.QueryAsync<(long Key, double Bucket)>("SELECT k, mad.bucket(991, k::text) FROM generate_series(1, 2000) k");
        Assert.All(sample, s => Assert.Equal(StickyBucket.Of(991, StickyBucket.KeyText(s.Key)), s.Bucket));
    }

    [Fact(Timeout = 60_000)]
    public async Task No_key_leaves_the_canary_while_its_percent_grows()
    {
        var left = await Database.DataSource.ScalarAsync<long>("""
            SELECT count(*) FROM generate_series(1, 20000) k, unnest('{1,5,25,50,99}'::float8[]) p
            WHERE mad.bucket(5, k::text) < p / 100 AND NOT mad.bucket(5, k::text) < (p * 1.5) / 100
            """);
        Assert.Equal(0, left);
    }

    [Fact(Timeout = 120_000)]
    public async Task Deploy_canary_promote_and_abort_move_what_the_alias_serves_and_record_each_change()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await ThreeReadyVersionsAsync(registry);

        Assert.Equal(1, await Database.DataSource.ScalarAsync<int>("SELECT mad.deploy(@model, 'production', 1)", new { model }));
        var seed = await Database.DataSource.ScalarAsync<long>("SELECT mad.deploy_canary(@model, 'production', 2, percent => 10)", new { model });
        var row = (await Database.DataSource.QueryAsync<(int Champion, int Canary, double Percent, long Seed)>(
            "SELECT a.version, d.canary_version, d.canary_percent, d.seed FROM mad.deployments d JOIN mad.aliases a USING (model, alias) WHERE d.model = @model", new { model })).Single();
        Assert.Equal((1, 2, 10.0, seed), row);

        var second = await Database.DataSource.FailsAsync("SELECT mad.deploy_canary(@model, 'production', 3, percent => 5)", new { model });
        Assert.Contains("already runs a canary: version 2 at 10 % beside version 1", second.MessageText, StringComparison.Ordinal);
        Assert.Contains("mad.promote", second.Hint, StringComparison.Ordinal);

        Assert.Equal(2, await Database.DataSource.ScalarAsync<int>("SELECT mad.promote(@model, 'production')", new { model }));
        Assert.Equal(2, await Database.DataSource.ScalarAsync<int>("SELECT mad.resolve(@model)", new { model }));
        var noCanary = await Database.DataSource.FailsAsync("SELECT mad.promote(@model, 'production')", new { model });
        Assert.Contains("runs no canary to promote: it serves version 2 to every key", noCanary.MessageText, StringComparison.Ordinal);

        var newSeed = await Database.DataSource.ScalarAsync<long>("SELECT mad.deploy_canary(@model, 'production', 3, percent => 50)", new { model });
        Assert.NotEqual(seed, newSeed);
        Assert.Equal(2, await Database.DataSource.ScalarAsync<int>("SELECT mad.abort_deployment(@model, 'production')", new { model }));
        Assert.Null(await Database.DataSource.ScalarAsync<int?>("SELECT canary_version FROM mad.deployments WHERE model = @model", new { model }));

        // Blue-green, then the alias functions keep working beside deployments.
        Assert.Equal(3, await Database.DataSource.ScalarAsync<int>("SELECT mad.deploy(@model, 'production', 3)", new { model }));
        Assert.Equal(2, await Database.DataSource.ScalarAsync<int>("SELECT mad.rollback_alias(@model, 'production')", new { model }));

        var kinds = await Database.DataSource.QueryAsync<string>("SELECT kind FROM mad.deployment_history WHERE model = @model ORDER BY id", new { model });
        Assert.Equal(["deploy", "canary", "promote", "canary", "abort", "deploy"], kinds);
        var whileCanary = await Database.DataSource.QueryAsync<(int Version, int? Canary, double? Percent, long? Seed)>("""
            SELECT a.version, a.canary_version, a.canary_percent, a.seed
            FROM mad.deployment_at(@model, 'production', (SELECT changed_at FROM mad.deployment_history WHERE model = @model AND kind = 'canary' ORDER BY id LIMIT 1)) a
            """, new { model });
        Assert.Equal((1, (int?)2, (double?)10.0, (long?)seed), whileCanary.Single());
        var now = (await Database.DataSource.QueryAsync<(int Version, int? Canary)>("SELECT version, canary_version FROM mad.deployment_at(@model, 'production', now() + interval '1 hour')", new { model })).Single();
        Assert.Equal((2, (int?)null), now);
    }

    [Fact(Timeout = 120_000)]
    public async Task Bad_input_gets_an_error_that_names_what_exists()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await ThreeReadyVersionsAsync(registry);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        await registry.PushAsync(model, TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct); // version 4 stays pending
        await Database.DataSource.ExecuteAsync("UPDATE mad.model_versions SET status = 'rejected', reason = 'test', signature = NULL WHERE model = @model AND version = 3", new { model });

        async Task<string> Fails(string call) => (await Database.DataSource.FailsAsync(call, new { model })).MessageText;

        Assert.Contains("has no version 9; its versions are 1 (ready), 2 (ready), 3 (rejected), 4 (pending)", await Fails("SELECT mad.deploy_canary(@model, 'production', 9, percent => 10)"), StringComparison.Ordinal);
        Assert.Contains("it is pending", await Fails("SELECT mad.deploy_canary(@model, 'production', 4, percent => 10)"), StringComparison.Ordinal);
        Assert.Contains("it was rejected (test)", await Fails("SELECT mad.deploy(@model, 'production', 3)"), StringComparison.Ordinal);
        Assert.Contains("percent 0 is outside (0, 100]", await Fails("SELECT mad.deploy_canary(@model, 'production', 2, percent => 0)"), StringComparison.Ordinal);
        Assert.Contains("percent 150 is outside (0, 100]", await Fails("SELECT mad.deploy_canary(@model, 'production', 2, percent => 150)"), StringComparison.Ordinal);
        Assert.Contains("do not rise: 25 follows 50", await Fails("SELECT mad.deploy_canary(@model, 'production', 2, steps => '{5,50,25}', step_every => '1 hour')"), StringComparison.Ordinal);
        Assert.Contains("need step_every", await Fails("SELECT mad.deploy_canary(@model, 'production', 2, steps => '{5,50}')"), StringComparison.Ordinal);
        Assert.Contains("has no alias 'staging'; its aliases are production -> 1", await Fails("SELECT mad.deploy_canary(@model, 'staging', 2, percent => 10)"), StringComparison.Ordinal);
        Assert.Contains("already serves version 1 to every key", await Fails("SELECT mad.deploy_canary(@model, 'production', 1, percent => 10)"), StringComparison.Ordinal);
        Assert.Contains("runs no canary or shadow to abort", await Fails("SELECT mad.abort_deployment(@model, 'production')"), StringComparison.Ordinal);
        await registry.PushReadyAsync(model, "skl2onnx_logreg_iris.onnx"); // version 5: label and probabilities of two inputs
        Assert.Contains("decodes into columns", await Fails("SELECT mad.deploy_canary(@model, 'production', 5, percent => 10)"), StringComparison.Ordinal);
        Assert.Contains("Model 'nosuch' does not exist", await Fails("SELECT mad.deploy('nosuch', 'production', 1)"), StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_mad_user_cannot_deploy_promote_abort_or_step_a_canary()
    {
        await using var roles = new HostileRoles(Database);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await ThreeReadyVersionsAsync(registry);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, percent => 10)", new { model });
        var (_, attacker) = await roles.LoginAsync("attacker", "IN ROLE mad_user");

        foreach (var call in new[]
        {
            "SELECT mad.deploy(@model, 'production', 3)",
            "SELECT mad.deploy_canary(@model, 'staging', 3, percent => 100)",
            "SELECT mad.deploy_shadow(@model, 'production', 3)",
            "SELECT mad.promote(@model, 'production')",
            "SELECT mad.abort_deployment(@model, 'production')",
            "SELECT mad.advance_deployments('attacker')",
            "SELECT mad.finish_canary(@model, 'production', true, 'promote', 'mine')",
            "SELECT * FROM mad.deployment_report",
            "UPDATE mad.deployments SET canary_percent = 100",
            "INSERT INTO mad.deployment_gates VALUES ('mine', 'mad.bucket(bigint, text)', 'x')",
        })
        {
            var refused = await attacker.FailsAsync(call, new { model });
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
        }

        Assert.Equal((1, 2, 10.0), (await Database.DataSource.QueryAsync<(int, int, double)>(
            "SELECT a.version, d.canary_version, d.canary_percent FROM mad.deployments d JOIN mad.aliases a USING (model, alias) WHERE d.model = @model", new { model })).Single());
        // What a mad_user may do: read the deployment and recompute its own keys' arms.
        Assert.Equal(10.0, await attacker.ScalarAsync<double>("SELECT canary_percent FROM mad.deployments WHERE model = @model", new { model }));
        Assert.InRange(await attacker.ScalarAsync<double>("SELECT mad.bucket(seed, '42') FROM mad.deployments WHERE model = @model", new { model }), 0, 1);
    }

    [Fact(Timeout = 120_000)]
    public async Task Rolling_steps_advance_once_with_two_sidecars_and_a_failing_gate_rolls_the_canary_back()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await ThreeReadyVersionsAsync(registry);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, steps => '{5,25,100}', step_every => '1 hour')", new { model });
        Assert.Equal(5.0, await Database.DataSource.ScalarAsync<double>("SELECT canary_percent FROM mad.deployments WHERE model = @model", new { model }));

        // Two sidecars find the step due at once: the first holds the row, the second skips it.
        await Database.DataSource.ExecuteAsync("UPDATE mad.deployments SET next_step_at = now() - interval '1 second' WHERE model = @model", new { model });
        await using (var first = await Database.DataSource.OpenConnectionAsync(Ct))
        await using (var second = await Database.DataSource.OpenConnectionAsync(Ct))
        {
            await using var transaction = await first.BeginTransactionAsync(Ct);
            var advancedFirst = await first.ExecuteScalarAsync<int>("SELECT mad.advance_deployments('sidecar_a')", transaction: transaction);
            var advancedSecond = await second.ExecuteScalarAsync<int>("SELECT mad.advance_deployments('sidecar_b')");
            await transaction.CommitAsync(Ct);
            Assert.True(advancedFirst == 1, "the first sidecar steps the due deployment");
            Assert.True(advancedSecond == 0, "the second skips it while the first holds it, and finds it not due after");
        }

        Assert.Equal(0, await Database.DataSource.ScalarAsync<int>("SELECT mad.advance_deployments('sidecar_b')"));
        var steps = await Database.DataSource.QueryAsync<(double Percent, string By, string Reason)>(
            "SELECT canary_percent, changed_by, reason FROM mad.deployment_history WHERE model = @model AND kind = 'step'", new { model });
        Assert.Equal(25.0, Assert.Single(steps).Percent);
        Assert.Contains("sidecar_a", steps[0].Reason, StringComparison.Ordinal);

        // A gate that fails ends the canary by itself: every key gets the champion again.
        await Database.DataSource.ExecuteAsync("""
            CREATE FUNCTION mad.gate_always_fails(model text, alias text) RETURNS text LANGUAGE sql AS $$ SELECT 'the test says no' $$;
            INSERT INTO mad.deployment_gates VALUES ('always_fails', 'mad.gate_always_fails(text, text)', 'test');
            UPDATE mad.deployments SET next_step_at = now() - interval '1 second' WHERE model = @model;
            """, new { model });
        try
        {
            Assert.Equal(1, await Database.DataSource.ScalarAsync<int>("SELECT mad.advance_deployments('sidecar_b')"));
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("DELETE FROM mad.deployment_gates WHERE name = 'always_fails'; DROP FUNCTION mad.gate_always_fails(text, text)");
        }

        var gate = (await Database.DataSource.QueryAsync<(int Version, int? Canary, string Reason)>(
            "SELECT version, canary_version, reason FROM mad.deployment_history WHERE model = @model ORDER BY id DESC LIMIT 1", new { model })).Single();
        Assert.Equal(1, gate.Version);
        Assert.Null(gate.Canary);
        Assert.Contains("gate always_fails failed: the test says no (sidecar sidecar_b)", gate.Reason, StringComparison.Ordinal);
        Assert.Equal(1, await Database.DataSource.ScalarAsync<int>("SELECT mad.resolve(@model)", new { model }));
    }

    [Fact(Timeout = 120_000)]
    public async Task The_last_step_at_100_promotes_on_schedule()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await ThreeReadyVersionsAsync(registry);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, percent => 50, steps => '{5,100}', step_every => '1 minute')", new { model });
        for (var i = 0; i < 2; i++)
        {
            await Database.DataSource.ExecuteAsync("UPDATE mad.deployments SET next_step_at = now() - interval '1 second' WHERE model = @model", new { model });
            Assert.Equal(1, await Database.DataSource.ScalarAsync<int>("SELECT mad.advance_deployments('s')"));
        }

        Assert.Equal(["canary", "step", "promote"], await Database.DataSource.QueryAsync<string>(
            "SELECT kind FROM mad.deployment_history WHERE model = @model AND kind <> 'deploy' ORDER BY id", new { model }));
        Assert.Equal(2, await Database.DataSource.ScalarAsync<int>("SELECT mad.resolve(@model)", new { model }));
    }

    /// <summary>
    /// A model with versions 1..3 ready: the random forest, the same forest with its classes rotated (same inputs and
    /// columns, other predictions: tests/models/make_rf_iris_rotated.py), the forest again.
    /// </summary>
    internal static async Task<string> ThreeReadyVersionsAsync(PostgresModelRegistry registry)
    {
        var model = Sql.UniqueName("churn");
        await registry.PushReadyAsync(model, "skl2onnx_rf_iris.onnx");
        await registry.PushAsync(model, RotatedIris, [], TestContext.Current.CancellationToken);
        await registry.PushReadyAsync(model, "skl2onnx_rf_iris.onnx"); // validates version 2 as well
        return model;
    }

    internal static byte[] RotatedIris => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "TestData", "rf_iris_rotated.onnx"));
}

using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// The embedded store's drift gate (sql/sqlite/025_drift_gate.sql), mirroring DriftGateTests on PostgreSQL: SQLite has
/// no rolling steps, so a canary's one step is its promotion. With the gate on, a canary whose own traffic drifts from
/// its baseline is refused promotion and ended (history kind 'gate'), one that does not drift is promoted; the same
/// Holm-Bonferroni rule over columns × (ks_p, chi2_p) as 044_1. Real files, real models, real refreshes.
/// </summary>
public sealed class SqliteDriftGateTests : IAsyncLifetime
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-drift-gate-{Guid.NewGuid():N}.db");
    private SqliteModelRegistry _registry = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _registry = await SqliteModelRegistry.OpenAsync(_path, Ct);
        await _registry.PushAsync("iris", TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
        await _registry.PushAsync("iris", await File.ReadAllBytesAsync(Path.Combine(AppContext.BaseDirectory, "TestData", "rf_iris_rotated.onnx"), Ct), [], Ct);
        await DriftRows.CreateSqliteAsync(_registry.Connection, "training", 2_000, seed: 22); // unshifted: the baseline's rows
        await Tables.CreateAsync(new PredictionTableSpec("mapping", "training", ["id"], "iris", Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct); // never refreshed
        await new SqliteMonitoring(_registry).SetBaselineAsync("iris", 2, "training", null, Ct);
        await Deployments.DeployAsync("iris", "production", 1, cancellationToken: Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _registry.DisposeAsync();
        SqliteConnection.ClearAllPools();
        File.Delete(_path);
    }

    private SqliteDeployments Deployments => new(_registry);

    private SqlitePredictionTables Tables => new(_registry);

    [Fact(Timeout = 120_000)]
    public async Task A_canary_whose_traffic_drifts_is_refused_promotion_and_rolled_back()
    {
        await GateAsync(on: true);
        await CanaryScoredAsync("scores", shift: 1.5, seed: 22);

        var refused = await Assert.ThrowsAsync<ModelAsDataException>(() => Deployments.PromoteAsync("iris", "production", cancellationToken: Ct));

        Assert.Equal(ErrorCode.Conflict, refused.Code);
        Assert.Contains("iris@production was not promoted: gate drift failed: the canary (version 2) drifted on", refused.Message, StringComparison.Ordinal);
        Assert.Contains("(Holm-Bonferroni at 0.01 over 8 tests)", refused.Message, StringComparison.Ordinal);
        Assert.Contains("scores.sepal_length", refused.Message, StringComparison.Ordinal);
        Assert.Contains("every key gets version 1 again", refused.Message, StringComparison.Ordinal);
        var now = await Deployments.GetAsync("iris", "production", Ct);
        Assert.Equal((1, null), (now.Version, now.CanaryVersion));
        var change = (await Deployments.HistoryAsync("iris", "production", Ct))[0];
        Assert.Equal(("gate", 1, (int?)null), (change.Kind, change.Version, change.CanaryVersion));
        Assert.StartsWith("gate drift failed: the canary (version 2) drifted on", change.Reason, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_canary_whose_traffic_does_not_drift_is_promoted()
    {
        await GateAsync(on: true);
        await CanaryScoredAsync("scores", shift: 0, seed: 22);

        var promoted = await Deployments.PromoteAsync("iris", "production", cancellationToken: Ct);

        Assert.Equal((2, null), (promoted.Version, promoted.CanaryVersion));
        Assert.Equal("promote", (await Deployments.HistoryAsync("iris", "production", Ct))[0].Kind);
    }

    [Fact(Timeout = 120_000)]
    public async Task Without_the_gate_a_drifting_canary_is_promoted_and_a_gate_must_name_an_alias()
    {
        await CanaryScoredAsync("scores", shift: 1.5, seed: 22);

        Assert.Equal(2, (await Deployments.PromoteAsync("iris", "production", cancellationToken: Ct)).Version);

        // The gate names an alias that exists (a foreign key), so a typo is refused rather than silently never judging.
        var typo = await Assert.ThrowsAsync<SqliteException>(() =>
            _registry.Connection.ExecuteAsync("INSERT INTO mad_drift_gates (model, alias) VALUES ('iris', 'prodution')"));
        Assert.Contains("FOREIGN KEY", typo.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// As DriftGateTests' 20 seeds on PostgreSQL (044_1): each a fresh unshifted sample of the baseline's distribution
    /// and its own 30 % of keys is promoted; a canary shifted by 0.5 on sepal_length is refused on each of 5 seeds.
    /// Fixed seeds, so this is deterministic.
    /// </summary>
    [Fact(Timeout = 300_000)]
    public async Task The_gate_promotes_unshifted_canaries_over_20_seeds_and_refuses_shifted_ones()
    {
        await GateAsync(on: true);
        foreach (var (seed, shift) in Enumerable.Range(1, 20).Select(s => (s, 0.0)).Concat(Enumerable.Range(21, 5).Select(s => (s, 0.5))))
        {
            await Deployments.DeployAsync("iris", "production", 1, cancellationToken: Ct);
            await _registry.Connection.ExecuteAsync("DELETE FROM mad_profile_counts"); // each seed is judged on its own traffic alone
            await CanaryScoredAsync($"scores_{seed}", shift, seed: 100 + seed, keySeed: seed);

            if (shift == 0)
            {
                Assert.Equal(2, (await Deployments.PromoteAsync("iris", "production", cancellationToken: Ct)).Version);
            }
            else
            {
                var refused = await Assert.ThrowsAsync<ModelAsDataException>(() => Deployments.PromoteAsync("iris", "production", cancellationToken: Ct));
                Assert.Contains($"scores_{seed}.sepal_length", refused.Message, StringComparison.Ordinal);
                Assert.Contains("Holm-Bonferroni at 0.01 over 8 tests", refused.Message, StringComparison.Ordinal);
            }
        }
    }

    private Task GateAsync(bool on) => _registry.Connection.ExecuteAsync(on
        ? "INSERT INTO mad_drift_gates (model, alias) VALUES ('iris', 'production')"
        : "DELETE FROM mad_drift_gates WHERE model = 'iris' AND alias = 'production'");

    /// <summary>
    /// A canary of version 2 at 30 % (a fixed key seed, so the same keys every run) and a prediction table over 2,000
    /// rows shifted by <paramref name="shift"/>, refreshed: the canary's rows are counted under version 2.
    /// </summary>
    private async Task CanaryScoredAsync(string name, double shift, int seed, int keySeed = 7)
    {
        await Deployments.DeployCanaryAsync("iris", "production", 2, 30, cancellationToken: Ct);
        await _registry.Connection.ExecuteAsync("UPDATE mad_deployments SET seed = @keySeed WHERE model = 'iris'", new { keySeed });
        var source = name + "_rows";
        await DriftRows.CreateSqliteAsync(_registry.Connection, source, 2_000, seed, shift);
        await Tables.CreateAsync(new PredictionTableSpec(name, source, ["id"], "iris", Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
        await Tables.RefreshAsync(name, cancellationToken: Ct);
    }
}

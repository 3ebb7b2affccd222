using ModelAsData.Core.Monitoring;

namespace ModelAsData.Tests.Monitoring;

/// <summary>
/// The drift gate's rule in C# (<see cref="DriftGate"/>, used by the SQLite store) against hand-worked Holm-Bonferroni:
/// the same rule as PostgreSQL's mad.drift_gate_tests (044_1), whose gate tests run it on real counts.
/// </summary>
public sealed class DriftGateRuleTests
{
    [Fact]
    public void Holm_adjusts_step_down_and_a_column_fails_only_with_a_paired_distance_beyond_its_threshold()
    {
        // Four tests: p = 0.001, 0.004, 0.02, 0.5. Holm: 4 × 0.001 = 0.004, max(0.004, 3 × 0.004) = 0.012, max(0.012, 2 × 0.02) = 0.04, 0.5.
        var tests = DriftGate.Tests(
        [
            Column("t", "a", ksP: 0.001, ksDrifted: true, chi2P: 0.5, psiDrifted: false),
            Column("t", "b", ksP: 0.02, ksDrifted: true, chi2P: 0.004, psiDrifted: false),
        ]);

        Assert.Equal(["a ks_p", "b chi2_p", "b ks_p", "a chi2_p"], tests.Select(t => $"{t.Column} {t.Metric}"));
        Assert.Equal([0.004, 0.012, 0.04, 0.5], tests.Select(t => Math.Round(t.AdjustedP, 10)));
        Assert.All(tests, t => Assert.Equal(4, t.Tests));
        Assert.Equal([true, false, false, false], tests.Select(t => t.Rejected));
        Assert.Equal([true, false, false, false], tests.Select(t => t.Failed));
        Assert.Equal("ks", tests[0].Distance);
    }

    [Fact]
    public void A_rejected_test_without_a_distance_past_its_floor_does_not_fail_and_the_failure_names_the_first_test()
    {
        var since = new DateTimeOffset(2026, 12, 4, 21, 0, 0, TimeSpan.Zero);
        var negligible = DriftGate.Tests([Column("t", "a", ksP: 1e-9, ksDrifted: false, chi2P: 1e-9, psiDrifted: false)]);
        Assert.All(negligible, t => Assert.True(t.Rejected && !t.Failed));
        Assert.Null(DriftGate.Failure(negligible, 2, since));

        var shifted = DriftGate.Tests([Column("scores", "sepal_length", ksP: 1.2e-45, ksDrifted: true, chi2P: 0.3, psiDrifted: false)]);
        Assert.Equal(
            "the canary (version 2) drifted on 1 input test(s) since 2026-12-04 21:00:00 UTC (Holm-Bonferroni at 0.01 over 2 tests); first: scores.sepal_length ks_p = 1.20e-45 (adjusted 2.40e-45), ks = 0.41 > threshold 0.1 (600 rows against a baseline of 2000)",
            DriftGate.Failure(shifted, 2, since));
    }

    /// <summary>A numeric column's metrics as DriftEvaluator gives them, with the p-values and which distances drifted chosen.</summary>
    private static DriftGateColumn Column(string table, string column, double ksP, bool ksDrifted, double chi2P, bool psiDrifted) =>
        new(table, column,
        [
            new DriftMetric("psi", psiDrifted ? 0.5 : 0.01, 0.1, psiDrifted),
            new DriftMetric("js", 0.01, 0.134, false),
            new DriftMetric("wasserstein", 0.01, 0.1, false),
            new DriftMetric("ks", ksDrifted ? 0.41 : 0.01, 0.1, ksDrifted),
            new DriftMetric("ks_p", ksP, 0.01, ksP < 0.01 && ksDrifted),
            new DriftMetric("chi2_p", chi2P, 0.01, chi2P < 0.01 && psiDrifted),
        ], 2000, 600);
}

using ModelAsData.Core.Monitoring;

namespace ModelAsData.Tests.Monitoring;

/// <summary>
/// The p-values under no drift, by simulation (docs/MONITORING.md "p-values under no drift"): baseline and window
/// drawn from one distribution, profiled and counted as the doors do (<see cref="ProfileBuilder"/>'s quantile bins,
/// <see cref="ColumnProfile.BinOf(double)"/>), then the share of windows whose p-value is at or below α. A valid test
/// rejects at most α of them. Fixed seeds, so the rates are the same every run.
/// </summary>
public sealed class DriftNullRejectionTests
{
    private const int Windows = 2_000;

    [Theory]
    [InlineData(false, 2_000, 600)] // continuous values
    [InlineData(false, 2_000, 100)]
    [InlineData(true, 2_000, 600)] // values on a grid of 37, many ties (DriftRows' sepal_length)
    [InlineData(true, 200, 100)]
    public void Ks_p_and_chi2_p_reject_at_most_alpha_of_windows_without_drift(bool grid, int baselineRows, int windowRows)
    {
        var random = new Random(16);
        var (ks01, ks05, chi01, chi05) = (0, 0, 0, 0);
        for (var w = 0; w < Windows; w++)
        {
            var metrics = Window(random, grid, baselineRows, windowRows, levels: 37);
            var ks = metrics.Single(m => m.Metric == "ks_p").Value!.Value;
            var chi2 = metrics.Single(m => m.Metric == "chi2_p").Value!.Value;
            (ks01, ks05, chi01, chi05) = (ks01 + (ks <= 0.01 ? 1 : 0), ks05 + (ks <= 0.05 ? 1 : 0), chi01 + (chi2 <= 0.01 ? 1 : 0), chi05 + (chi2 <= 0.05 ? 1 : 0));
        }

        // The binned KS compares the cumulative shares at the bin edges only, a subset of the points the KS of the raw
        // values takes its maximum over, so it can only be smaller: conservative (about 0.3 % at 1 %).
        Assert.True(ks01 <= Windows * 0.01, $"ks_p rejected {ks01} of {Windows} at 0.01");
        Assert.True(ks05 <= Windows * 0.05, $"ks_p rejected {ks05} of {Windows} at 0.05");
        // chi2_p is close to nominal; the 1.5 % and 6 % bounds leave room for the simulation's own noise (±0.2 %, ±0.5 %).
        // Before 049_2 continuous windows of 100 rows were rejected 9.5 % of the time at 0.01 (the empty outer bins).
        Assert.True(chi01 <= Windows * 0.015, $"chi2_p rejected {chi01} of {Windows} at 0.01");
        Assert.True(chi05 <= Windows * 0.06, $"chi2_p rejected {chi05} of {Windows} at 0.05");
    }

    /// <summary>
    /// The gate's family (4 columns × ks_p, chi2_p) under no drift: Holm rejects one or more tests only when the
    /// smallest p is at most α / 8, which happens in at most α of the windows. The smallest of 8 p-values is small
    /// in itself: its median is about 0.14 here, and 0.08 for 8 independent tests (1 − 0.5^(1/8)).
    /// </summary>
    [Fact]
    public void The_gate_refuses_at_most_one_in_a_hundred_windows_without_drift()
    {
        var random = new Random(44);
        var refused = 0;
        var smallest = new List<double>();
        for (var w = 0; w < Windows; w++)
        {
            var family = new[] { 37, 23, 59, 25 }.Select((levels, c) => new DriftGateColumn("t", "c" + c, Window(random, true, 2_000, 600, levels), 2_000, 600)).ToList();
            var tests = DriftGate.Tests(family);
            refused += tests.Any(t => t.Rejected) ? 1 : 0;
            smallest.Add(tests[0].P);
        }

        Assert.True(refused <= Windows * 0.01, $"Holm rejected a test in {refused} of {Windows} windows");
        var median = smallest.Order().ElementAt(Windows / 2);
        Assert.InRange(median, 0.05, 0.3);
    }

    /// <summary>One window's metrics: a baseline and a window of one distribution (uniform; on a grid of <paramref name="levels"/> values).</summary>
    private static IReadOnlyList<DriftMetric> Window(Random random, bool grid, int baselineRows, int windowRows, int levels)
    {
        double Draw() => grid ? Math.Round(4.3 + (random.Next(levels) * 0.1), 1) : 4.3 + (random.NextDouble() * levels * 0.1);
        var baseline = new ProfileBuilder("c", ProfileKind.Input);
        for (var i = 0; i < baselineRows; i++)
        {
            baseline.Add(Draw(), whole: false);
        }

        var profile = baseline.Build();
        var counts = new long[profile.Counts.Length];
        for (var i = 0; i < windowRows; i++)
        {
            counts[profile.BinOf(Draw())]++;
        }

        return DriftEvaluator.Evaluate(profile, counts, 0);
    }
}

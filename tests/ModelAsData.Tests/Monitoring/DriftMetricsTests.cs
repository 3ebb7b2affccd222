using ModelAsData.Core;
using ModelAsData.Core.Monitoring;

namespace ModelAsData.Tests.Monitoring;

/// <summary>The golden values of issue 16 and the properties the metrics must keep (mad.drift computes the same in SQL).</summary>
public sealed class DriftMetricsTests
{
    private static readonly double[] s_uniform = [25, 25, 25, 25];
    private static readonly double[] s_rising = [10, 20, 30, 40];

    [Fact]
    public void Uniform_against_rising_shares_give_the_golden_values()
    {
        Assert.Equal(0.2282, DriftMetrics.Psi(s_uniform, s_rising), 4);
        Assert.Equal(0.2005, DriftMetrics.JensenShannon(s_uniform, s_rising), 4);
        Assert.Equal(0.20, DriftMetrics.KolmogorovSmirnov(s_uniform, s_rising), 10);
        Assert.Equal(0.15, DriftMetrics.LInfinity(s_uniform, s_rising), 10);
    }

    [Fact]
    public void An_empty_bin_takes_epsilon_in_psi()
    {
        Assert.Equal(1e-4, DriftMetrics.Epsilon);
        Assert.Equal(1.5640, DriftMetrics.Psi([5, 5, 0], [4, 4, 2]), 4);
    }

    [Fact]
    public void Summing_daily_counts_gives_the_psi_of_the_union_of_the_days()
    {
        var baseline = new ColumnProfile("x", ProfileKind.Input, ProfileType.Numeric, [0, 1, 2, 3], null, [0, 40, 30, 30, 0], 0, 1);
        double[][] days = [[0.5, 0.7, 1.5, 2.5, 2.9, -1], [1.1, 1.2, 2.2, 4], [0.1, 0.2, 0.3]];
        var byDay = days.Select(day =>
        {
            var counts = new long[baseline.BinCount];
            foreach (var x in day)
            {
                counts[baseline.BinOf(x)]++;
            }

            return counts;
        }).ToList();
        var summed = Enumerable.Range(0, baseline.BinCount).Select(b => (double)byDay.Sum(d => d[b])).ToArray();
        var union = new double[baseline.BinCount];
        foreach (var x in days.SelectMany(d => d))
        {
            union[baseline.BinOf(x)]++;
        }

        var reference = baseline.Counts.Select(c => (double)c).ToArray();
        Assert.Equal(DriftMetrics.Psi(reference, union), DriftMetrics.Psi(reference, summed), 12);
        Assert.Equal(13, summed.Sum());
    }

    [Fact]
    public void Identical_histograms_show_no_drift()
    {
        Assert.Equal(0, DriftMetrics.Psi(s_rising, s_rising), 12);
        Assert.Equal(0, DriftMetrics.JensenShannon(s_rising, s_rising), 12);
        Assert.Equal(0, DriftMetrics.Wasserstein(s_rising, s_rising, [0, 1, 2, 3], 1), 12);
        Assert.Equal(1, DriftMetrics.ChiSquareP(s_rising, s_rising), 12);
        Assert.Equal(1, DriftMetrics.KolmogorovSmirnovP(0, 100, 100), 12);
    }

    [Fact]
    public void Wasserstein_is_the_mass_moved_in_baseline_deviations()
    {
        // All mass moves from position 0 to position 2, with a spread of 4: half a deviation.
        Assert.Equal(0.5, DriftMetrics.Wasserstein([1, 0, 0], [0, 0, 1], [0, 1, 2], 4), 12);
    }

    [Fact]
    public void P_values_match_the_textbook_distributions()
    {
        // χ² = 10.0 on 2 degrees of freedom: p = e^(−5).
        Assert.Equal(Math.Exp(-5), Gamma.UpperRegularized(1, 5), 10);
        Assert.Equal(9.2103, Gamma.ChiSquare99(2), 1); // exact 9.2103; Wilson–Hilferty is close
        Assert.Equal(0.0, DriftMetrics.KolmogorovSmirnovP(0.5, 1000, 1000), 10);
        Assert.InRange(DriftMetrics.KolmogorovSmirnovP(0.05, 1000, 1000), 0.1, 0.2); // D = 0.05 at n = m = 1000: p ≈ 0.16
    }

    [Fact]
    public void Thresholds_grow_for_small_windows_and_stop_at_the_floor_for_large_ones()
    {
        var small = DriftEvaluator.Evaluate(ProfileType.Numeric, [10, 10, 10, 10, 10], 0, [1, 1, 1, 1, 1], 0, [0, 1, 2, 3, 4], 1);
        var large = DriftEvaluator.Evaluate(ProfileType.Numeric, [10, 10, 10, 10, 10], 0, [100_000, 100_000, 100_000, 100_000, 100_000], 0, [0, 1, 2, 3, 4], 1);
        var smallPsi = small.Single(m => m.Metric == "psi").Threshold!.Value;
        var largePsi = large.Single(m => m.Metric == "psi").Threshold!.Value;
        Assert.True(smallPsi > 1, $"psi threshold at 5 rows: {smallPsi}");
        Assert.Equal(DriftEvaluator.PsiFloor, DriftEvaluator.Evaluate(ProfileType.Numeric, [100_000, 100_000, 100_000], 0, [100_000, 100_000, 100_000], 0, [0, 1, 2], 1).Single(m => m.Metric == "psi").Threshold!.Value, 12);
        Assert.True(largePsi < smallPsi);
        Assert.DoesNotContain(small, m => m.Drifted);
    }

    [Fact]
    public void A_window_without_rows_has_metrics_without_values_never_NaN()
    {
        var metrics = DriftEvaluator.Evaluate(ProfileType.Category, [5, 5], 1, [0, 0], 0, null, 0);
        Assert.Equal(["psi", "js", "linf", "chi2_p"], metrics.Select(m => m.Metric));
        Assert.All(metrics, m => Assert.True(m.Value is null && m.Threshold is null && !m.Drifted));
    }

    [Fact]
    public void A_shifted_numeric_column_drifts_on_every_metric()
    {
        var metrics = DriftEvaluator.Evaluate(ProfileType.Numeric, [0, 500, 500, 0], 0, [0, 0, 500, 500], 0, [0, 0.5, 1.5, 2], 0.5);
        Assert.All(metrics, m => Assert.True(m.Drifted, $"{m.Metric} = {m.Value} against {m.Threshold}"));
    }

    [Fact]
    public void Bins_follow_width_bucket_with_the_top_edge_closed()
    {
        var profile = new ColumnProfile("tenure", ProfileKind.Input, ProfileType.Numeric, [3, 12, 24], null, new long[4], 0, 1);
        Assert.Equal([0, 1, 1, 2, 2, 3], new[] { 2.9, 3, 11.9, 12, 24, 24.1 }.Select(profile.BinOf));
        Assert.Equal("[12, 24]", profile.BinLabel(2));
    }

    [Fact]
    public void Quantile_edges_are_percentile_disc_without_repeats()
    {
        var builder = new ProfileBuilder("x", ProfileKind.Input);
        foreach (var x in Enumerable.Range(1, 100))
        {
            builder.Add(x + 0.5, whole: false);
        }

        var profile = builder.Build(bins: 4);
        Assert.Equal([1.5, 25.5, 50.5, 75.5, 100.5], profile.Edges);
        Assert.Equal([0, 24, 25, 25, 26, 0], profile.Counts); // half-open bins: [1.5, 25.5) holds 24 values, the closed top bin 26
    }

    [Fact]
    public void Few_whole_numbers_and_text_are_categories_with_other()
    {
        var builder = new ProfileBuilder("plan", ProfileKind.Input);
        foreach (var i in Enumerable.Range(0, 30))
        {
            builder.Add($"p{i:00}");
            builder.Add("basic");
        }

        builder.AddNull();
        var profile = builder.Build();
        Assert.Equal(ProfileType.Category, profile.Type);
        Assert.Equal(ProfileBuilder.MaxCategories, profile.Categories.Length);
        Assert.Equal("basic", profile.Categories[0]);
        Assert.Equal(11, profile.Counts[^1]); // p19 … p29: the eleven after basic and p00 … p18
        Assert.Equal(1, profile.NullCount);
    }

    [Fact]
    public void Bad_baselines_are_refused_with_the_reason()
    {
        Assert.Contains("no rows", Assert.Throws<ModelAsDataException>(() => new ProfileBuilder("x", ProfileKind.Input).Build()).Message, StringComparison.Ordinal);
        var nulls = new ProfileBuilder("age", ProfileKind.Input);
        nulls.AddNull();
        Assert.Contains("null in all 1 baseline rows", Assert.Throws<ModelAsDataException>(() => nulls.Build()).Message, StringComparison.Ordinal);
        Assert.Contains("must rise: 12 is followed by 3", Assert.Throws<ModelAsDataException>(() => ProfileBuilder.ParseBins("""{"tenure": [3, 12, 3]}""")).Message, StringComparison.Ordinal);
    }
}

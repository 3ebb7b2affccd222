namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>The A/B statistics of issue 17 against its goldens: the two-proportion z-test, the sample-ratio check and Welch's t (scipy).</summary>
public sealed class CompareStatisticsTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 30_000)]
    public async Task A_rate_of_1000_in_10000_against_1100_in_10000_gives_z_2_307_and_p_0_0211()
    {
        var (difference, low, high, z, p) = (await Database.DataSource.QueryAsync<(double, double, double, double, double)>(
            "SELECT difference, ci_low, ci_high, z, p_value FROM mad.proportion_test(1000, 10000, 1100, 10000)")).Single();

        Assert.Equal(0.01, difference, 12);
        Assert.Equal(2.307, z, 3);
        Assert.Equal(0.0211, p, 4);
        Assert.True(low > 0 && high < 0.02 && Math.Abs(low + high - 0.02) < 1e-12, $"{low} .. {high}");
    }

    [Fact(Timeout = 30_000)]
    public async Task Ten_thousand_three_hundred_against_nine_thousand_seven_hundred_at_50_percent_is_flagged()
    {
        var (chi, p, mismatch) = (await Database.DataSource.QueryAsync<(double, double, bool)>(
            "SELECT chi_square, p_value, mismatch FROM mad.sample_ratio_check(9700, 10300, 50)")).Single();
        var fair = await Database.DataSource.ScalarAsync<bool>("SELECT mismatch FROM mad.sample_ratio_check(9000, 1010, 10)");

        Assert.Equal(18.0, chi, 9);
        Assert.True(mismatch && p < 0.001, $"p = {p}");
        Assert.False(fair);
    }

    [Fact(Timeout = 30_000)]
    public async Task Welch_matches_scipy()
    {
        // scipy.stats.ttest_ind_from_stats(0.48, sqrt(0.09), 300, 0.52, sqrt(0.04), 400, equal_var=False) and
        // t.ppf(0.975, df) for the interval; then a small one (df ≈ 5).
        var large = (await Database.DataSource.QueryAsync<(double D, double Low, double High, double T, double Df, double P)>(
            "SELECT difference, ci_low, ci_high, t, df, p_value FROM mad.welch_test(0.52, 0.04, 400, 0.48, 0.09, 300)")).Single();
        var small = (await Database.DataSource.QueryAsync<(double D, double Low, double High, double T, double Df, double P)>(
            "SELECT difference, ci_low, ci_high, t, df, p_value FROM mad.welch_test(10, 4, 5, 12.5, 9, 4)")).Single();

        Assert.Equal(-2.0, large.T, 9);
        Assert.Equal(490.69820051413893, large.Df, 6);
        Assert.Equal(0.046050936849160146, large.P, 9);
        Assert.Equal(-0.07929620418985805, large.Low, 9);
        Assert.Equal(-0.0007037958101420091, large.High, 9);
        Assert.Equal(1.4314958357846705, small.T, 9);
        Assert.Equal(5.035182679296346, small.Df, 6);
        Assert.Equal(0.2113126329582631, small.P, 8);
        Assert.Equal(-1.9799096063579036, small.Low, 6);
        Assert.Equal(6.979909606357904, small.High, 6);
    }
}

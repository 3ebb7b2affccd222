namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>The A/B statistics of issue 17 against its goldens: the two-proportion z-test and the sample-ratio check.</summary>
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
}

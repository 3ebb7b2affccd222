using ModelAsData.Core.Monitoring;

namespace ModelAsData.Tests.Monitoring;

/// <summary>
/// The counting hot path's bins (NumericBins, edges counted four per compare) against ColumnProfile.BinOf's binary
/// search, on every edge, between edges, past both ends, the top edge, NaN and infinities, for 1 to 17 edges (the
/// vector width's remainders), so the counts a door writes stay the same.
/// </summary>
public sealed class NumericBinsTests
{
    [Fact]
    public void Bins_are_the_binary_searchs_for_any_number_of_edges_and_every_kind_of_value()
    {
        var random = new Random(16);
        for (var n = 1; n <= 17; n++)
        {
            var edges = new double[n];
            var at = -5.0;
            for (var i = 0; i < n; i++)
            {
                edges[i] = at += 0.01 + random.NextDouble();
            }

            var profile = new ColumnProfile("x", ProfileKind.Input, ProfileType.Numeric, edges, null, new long[n + 1], 0, 1);
            var bins = new NumericBins(edges);
            var values = new List<double> { double.NaN, double.PositiveInfinity, double.NegativeInfinity, double.MaxValue, double.MinValue, 0.0, -0.0 };
            foreach (var edge in edges)
            {
                values.AddRange([edge, Math.BitDecrement(edge), Math.BitIncrement(edge)]);
            }

            for (var i = 0; i < 2_000; i++)
            {
                values.Add(edges[0] - 1 + (random.NextDouble() * (edges[^1] - edges[0] + 2)));
            }

            foreach (var value in values)
            {
                Assert.True(profile.BinOf(value) == bins.Of(value), $"{n} edges, value {value:R}: BinOf {profile.BinOf(value)}, NumericBins {bins.Of(value)}");
            }
        }
    }

    [Fact]
    public void The_top_edge_is_in_the_last_inner_bin_and_one_edge_has_no_such_rule()
    {
        var bins = new NumericBins([1.0, 2.0, 3.0]);
        Assert.Equal(0, bins.Of(0.5));
        Assert.Equal(1, bins.Of(1.0));
        Assert.Equal(2, bins.Of(3.0));
        Assert.Equal(3, bins.Of(3.5));
        Assert.Equal(1, new NumericBins([1.0]).Of(1.0));
    }

    [Fact]
    public void Edges_that_do_not_rise_are_searched_as_the_binary_search_does()
    {
        double[] edges = [1.0, 3.0, 2.0, double.NaN, 5.0];
        var bins = new NumericBins(edges);
        foreach (var value in new[] { 0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, double.NaN })
        {
            Assert.Equal(Search(edges, value), bins.Of(value));
        }
    }

    /// <summary>ColumnProfile.BinOf's search, which a profile with such edges never reaches (its edges must rise).</summary>
    private static int Search(double[] edges, double value)
    {
        int lo = 0, hi = edges.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (edges[mid] <= value) lo = mid + 1;
            else hi = mid;
        }

        return lo == edges.Length && edges.Length > 1 && value == edges[^1] ? lo - 1 : lo;
    }
}

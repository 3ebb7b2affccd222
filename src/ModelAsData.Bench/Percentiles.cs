namespace ModelAsData.Bench;

/// <summary>p50, p99 and max of a set of durations in milliseconds (interpolated, as percentile_cont).</summary>
internal sealed record Percentiles(double P50, double P99, double Max)
{
    public static Percentiles Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            throw new InvalidOperationException("No durations were measured.");
        }

        return new Percentiles(At(sorted, 0.5), At(sorted, 0.99), sorted[^1]);
    }

    public static Percentiles Median(IReadOnlyList<Percentiles> rounds) =>
        new(Median(rounds.Select(r => r.P50)), Median(rounds.Select(r => r.P99)), Median(rounds.Select(r => r.Max)));

    private static double Median(IEnumerable<double> values) => At(values.Order().ToArray(), 0.5);

    private static double At(double[] sorted, double fraction)
    {
        var position = fraction * (sorted.Length - 1);
        var below = (int)Math.Floor(position);
        var above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + ((position - below) * (sorted[above] - sorted[below]));
    }
}

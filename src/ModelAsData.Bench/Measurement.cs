namespace ModelAsData.Bench;

/// <summary>One benchmark figure: the median over rounds of rows per second, and the rounds themselves.</summary>
public sealed record Measurement(string Name, IReadOnlyList<double> RowsPerSecond)
{
    public double Median
    {
        get
        {
            var sorted = RowsPerSecond.Order().ToArray();
            return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
        }
    }

    public double Min => RowsPerSecond.Min();

    public double Max => RowsPerSecond.Max();
}

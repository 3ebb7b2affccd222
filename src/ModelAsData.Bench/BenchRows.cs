namespace ModelAsData.Bench;

/// <summary>Fresh feature rows for the benchmarks: iris-like, different every row, so no run scores a buffer the branch predictor has learnt.</summary>
internal static class BenchRows
{
    public static float[][] Iris(int count, int seed)
    {
        var random = new Random(seed);
        var rows = new float[count][];
        for (var i = 0; i < count; i++)
        {
            rows[i] = [4.3f + (random.NextSingle() * 3.6f), 2.0f + (random.NextSingle() * 2.4f), 1.0f + (random.NextSingle() * 5.9f), 0.1f + (random.NextSingle() * 2.4f)];
        }

        return rows;
    }
}

namespace ModelAsData.Sidecar.Streaming;

/// <summary>How long streaming waits before trying again after <c>failures</c> failures in a row: 0.5 s, doubling, at most 30 s.</summary>
internal static class StreamBackoff
{
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(30);

    public static TimeSpan After(int failures) =>
        TimeSpan.FromMilliseconds(Math.Min(Max.TotalMilliseconds, 500 * Math.Pow(2, Math.Min(failures - 1, 10))));
}

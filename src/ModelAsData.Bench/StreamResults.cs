namespace ModelAsData.Bench;

/// <summary>Everything one run of the stream bench measured.</summary>
internal sealed record StreamResults(
    string ServerVersion,
    string LoadAverage,
    int Rounds,
    TimeSpan Period,
    StreamLatency Latency,
    IReadOnlyList<RampStep> Ramp,
    Measurement Unwatched,
    Measurement Watched,
    Measurement? TriggersOnly = null)
{
    /// <summary>The highest achieved rate of a step whose lag stayed bounded (0 if none did).</summary>
    public double Sustained => Ramp.Where(s => s.Bounded).Select(s => s.Achieved).DefaultIfEmpty(0).Max();

    /// <summary>1 − watched / unwatched, on the medians: what streaming costs the writers, the drain on the same cores included.</summary>
    public double Overhead => 1 - (Watched.Median / Unwatched.Median);

    /// <summary>The same with the sidecar paused: what the watch triggers alone cost the writers (null: not measured).</summary>
    public double? TriggerOverhead => TriggersOnly is { } t ? 1 - (t.Median / Unwatched.Median) : null;
}

/// <summary>Milliseconds, medians over rounds of each round's p50 / p99 / max.</summary>
internal sealed record StreamLatency(Percentiles SelectOne, Percentiles WriterRoundTrip, Percentiles Visible);

/// <summary>One step of the rate ramp: the rate asked and reached, the lag seen, and whether it stayed bounded.</summary>
internal sealed record RampStep(int Target, double Achieved, long MaxWaiting, double MaxOldestSeconds, TimeSpan? DrainedAfter, bool Bounded)
{
    /// <summary>Writers reaching less than this share of the target means the writers, not the drain, were the limit.</summary>
    public const double Reached = 0.9;

    public bool WritersKeptUp => Achieved >= Target * Reached;
}

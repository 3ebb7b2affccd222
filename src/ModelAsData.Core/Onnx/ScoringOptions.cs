namespace ModelAsData.Core.Onnx;

/// <summary>How models are loaded and scored.</summary>
/// <param name="IntraOpThreads">ONNX Runtime threads per call; 1 leaves the other cores to the database and to other scorers.</param>
/// <param name="MaxModelBytes">The largest model accepted.</param>
public sealed record ScoringOptions(int IntraOpThreads = 1, long MaxModelBytes = ScoringOptions.DefaultMaxModelBytes)
{
    /// <summary>256 MiB: larger than any tabular model, small enough to keep as a bytea.</summary>
    public const long DefaultMaxModelBytes = 256L * 1024 * 1024;

    public static ScoringOptions Default { get; } = FromEnvironment();

    private static ScoringOptions FromEnvironment()
    {
        var max = Environment.GetEnvironmentVariable("MAD_MAX_MODEL_BYTES");
        return long.TryParse(max, out var bytes) && bytes > 0 ? new ScoringOptions(MaxModelBytes: bytes) : new ScoringOptions();
    }
}

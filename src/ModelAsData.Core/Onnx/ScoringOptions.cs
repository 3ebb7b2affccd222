namespace ModelAsData.Core.Onnx;

/// <summary>How models are loaded and scored.</summary>
/// <param name="IntraOpThreads">ONNX Runtime threads per call; 1 leaves the other cores to the database and to other scorers.</param>
/// <param name="MaxModelBytes">The largest model accepted.</param>
public sealed record ScoringOptions(int IntraOpThreads = 1, long MaxModelBytes = ScoringOptions.DefaultMaxModelBytes)
{
    /// <summary>
    /// 2 GiB less 57 bytes, the largest array .NET holds (ONNX's own limit is 2 GiB): models larger than a chunk are
    /// stored and read in chunks (docs/LARGE_MODELS.md).
    /// </summary>
    public const long DefaultMaxModelBytes = 2147483591;

    public static ScoringOptions Default { get; } = FromEnvironment();

    private static ScoringOptions FromEnvironment()
    {
        var max = Environment.GetEnvironmentVariable("MAD_MAX_MODEL_BYTES");
        return long.TryParse(max, out var bytes) && bytes > 0 ? new ScoringOptions(MaxModelBytes: bytes) : new ScoringOptions();
    }
}

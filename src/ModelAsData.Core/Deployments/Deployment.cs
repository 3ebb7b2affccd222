namespace ModelAsData.Core.Deployments;

/// <summary>
/// What an alias serves (docs/DEPLOYMENTS.md): the champion <see cref="Version"/>, and optionally a canary (a second
/// version for <see cref="CanaryPercent"/> of the keys, by <see cref="StickyBucket"/> under <see cref="Seed"/>), its
/// rolling steps, and a shadow version scored beside the served one and never served.
/// </summary>
public sealed record Deployment(
    string Model,
    string Alias,
    int Version,
    int? CanaryVersion,
    double? CanaryPercent,
    IReadOnlyList<double>? Steps,
    TimeSpan? StepEvery,
    DateTimeOffset? NextStepAt,
    int? ShadowVersion,
    double? ShadowPercent,
    long? Seed)
{
    /// <summary>The arm that serves a key: <c>canary</c> when the canary's bucket holds it, else <c>champion</c>.</summary>
    public string ArmOf(string keyText) =>
        CanaryVersion is not null && Seed is { } seed && StickyBucket.InCanary(seed, keyText, CanaryPercent ?? 0) ? Arms.Canary : Arms.Champion;

    /// <summary>The version that serves a key.</summary>
    public int VersionOf(string keyText) => ArmOf(keyText) == Arms.Canary ? CanaryVersion!.Value : Version;

    /// <summary>Whether the shadow scores a key as well (its own sample of keys, by the same hash).</summary>
    public bool ShadowScores(string keyText) =>
        ShadowVersion is not null && Seed is { } seed && StickyBucket.InCanary(seed, keyText, ShadowPercent ?? 0);
}

/// <summary>The words for a deployment's arms, as every prediction row records them.</summary>
public static class Arms
{
    public const string Champion = "champion";
    public const string Canary = "canary";
    public const string Shadow = "shadow";
}

/// <summary>
/// One arm of a deployment in its report: version, share of keys, rows scored and failed over its prediction tables;
/// for the shadow, its agreement with the served rows of the same keys (labels: the share of rows whose label columns
/// all equal; values: the mean absolute difference) and why it last failed, if it did; for the canary, the same
/// agreement with the champion over the sample of its keys the refreshes also scored with the champion; RowsCompared,
/// the rows that agreement is over; and, over the prediction tables served through the alias that name a legacy
/// column, the arm's agreement with the legacy system (the same two words).
/// </summary>
public sealed record DeploymentArm(string Arm, int Version, double Percent, long RowsScored, long RowsFailed, double? ErrorRate,
    double? ShareEqual = null, double? MeanAbsoluteDifference = null, string? ShadowError = null,
    double? LegacyShareEqual = null, double? LegacyMeanAbsoluteDifference = null, long? RowsCompared = null);

/// <summary>
/// One arm and version of a prediction table compared with its legacy column (docs/DEPLOYMENTS.md, "Legacy
/// replacement"), over rows scored without error whose legacy value is not NULL: a label output as the share equal
/// (compared as text), a value output as the mean absolute difference; the other is null.
/// </summary>
public sealed record LegacyAgreement(string Arm, int ModelVersion, long RowsCompared, double? ShareEqual, double? MeanAbsoluteDifference);

/// <summary>The legacy column a prediction table names (null: none) and the output column it is compared with.</summary>
public sealed record LegacyColumn(string PredictionTable, string? Column, string? Output);

/// <summary>One change of a deployment, with the state after it.</summary>
public sealed record DeploymentChange(string Kind, int Version, int? CanaryVersion, double? CanaryPercent, int? ShadowVersion, double? ShadowPercent, string ChangedBy, DateTimeOffset ChangedAt, string? Reason);

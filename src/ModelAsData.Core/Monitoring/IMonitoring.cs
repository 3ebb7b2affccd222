namespace ModelAsData.Core.Monitoring;

/// <summary>
/// Drift monitoring on one store (issue 16): baselines stored with versions, and drift computed from the profile
/// counts the doors add as they score. PostgreSQL answers with mad.set_baseline / mad.drift; the embedded store
/// computes the same in-process (DriftEvaluator), from tables of the same shape.
/// </summary>
public interface IMonitoring
{
    /// <summary>
    /// Profiles <paramref name="source"/>'s mapped columns (read with the caller's rights) and the outputs of scoring its
    /// rows with <paramref name="model"/>@<paramref name="version"/>, and stores them as the version's baseline.
    /// </summary>
    /// <param name="bins">Edges per numeric column, as JSON ({"tenure": [3, 12, 24]}); null: 10 quantile bins.</param>
    Task<BaselineSummary> SetBaselineAsync(string model, int version, string source, string? bins, CancellationToken cancellationToken = default);

    /// <summary>The drift of a prediction table per window, version, column and metric (mad.drift's rows).</summary>
    Task<IReadOnlyList<DriftRow>> DriftAsync(string table, DateTimeOffset? since, TimeSpan window, CancellationToken cancellationToken = default);

    /// <summary>The histograms behind <see cref="DriftAsync"/>, bin by bin (mad.drift_histograms' rows).</summary>
    Task<IReadOnlyList<HistogramBin>> HistogramsAsync(string table, DateTimeOffset? since, TimeSpan window, CancellationToken cancellationToken = default);
}

/// <summary>What a baseline holds: its columns by kind, and its rows.</summary>
public sealed record BaselineSummary(string Model, int Version, string Source, int Inputs, int Outputs, long Rows);

/// <summary>One row of mad.drift; <see cref="Reference"/>: what the window is compared with, 'baseline' or 'first_window'.</summary>
public sealed record DriftRow(DateTimeOffset WindowStart, DateTimeOffset WindowEnd, int Version, string Column, string Kind, string Metric,
    double? Value, double? Threshold, bool Drifted, long NBaseline, long NCurrent, string Reference = References.Baseline);

/// <summary>The references a window's drift is computed against (mad.baselines.reference).</summary>
public static class References
{
    /// <summary>A baseline set from a table (mad.set_baseline).</summary>
    public const string Baseline = "baseline";

    /// <summary>No baseline: the version's first window of traffic (docs/MONITORING.md).</summary>
    public const string FirstWindow = "first_window";
}

/// <summary>One bin of one column's histograms in one window (<see cref="Bin"/> −1: nulls); <see cref="Baseline"/> null where the caller may not see the baseline.</summary>
public sealed record HistogramBin(DateTimeOffset WindowStart, DateTimeOffset WindowEnd, int Version, string Column, string Kind, int Bin, string Label,
    long? Baseline, long Current);

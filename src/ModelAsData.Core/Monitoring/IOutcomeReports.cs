namespace ModelAsData.Core.Monitoring;

/// <summary>
/// What the outcomes say about the served predictions (issue 17): metrics per window, version and arm, and champion
/// against canary. PostgreSQL answers with mad.performance and mad.compare, run as the caller; the embedded store
/// computes the same in-process (<see cref="OutcomeMetrics"/>, <see cref="OutcomeComparison"/>) from its history.
/// </summary>
public interface IOutcomeReports
{
    /// <summary>
    /// mad.performance(table, window, as_of): one row per metric, with the notices the store raised (duplicates, labels
    /// that grade nothing). With <paramref name="since"/>, only predictions scored at or after it count, as in
    /// mad.compare (<see cref="ComparisonReport.Since"/>).
    /// </summary>
    Task<PerformanceReport> PerformanceAsync(string table, TimeSpan window, DateTimeOffset? asOf, DateTimeOffset? since = null, CancellationToken cancellationToken = default);

    /// <summary>mad.compare(model, alias, metric, horizon): one row per arm of each prediction table served through the alias.</summary>
    Task<ComparisonReport> CompareAsync(string model, string alias, string? metric, long horizon, CancellationToken cancellationToken = default);
}

/// <summary>One row of mad.performance.</summary>
public sealed record PerformanceRow(DateTimeOffset WindowStart, DateTimeOffset WindowEnd, int Version, string Arm, string Metric, double? Value,
    long NLabeled, double Coverage);

/// <summary>mad.performance's rows and the notices raised while computing them.</summary>
public sealed record PerformanceReport(IReadOnlyList<PerformanceRow> Rows, IReadOnlyList<string> Notices);

/// <summary>
/// One row of mad.compare: an arm's metric; the canary's row carries the difference (canary − champion) with its
/// 95 % interval, the test, the sample-ratio check and the verdict.
/// </summary>
public sealed record ComparisonRow(string PredictionTable, string Arm, int Version, long? N, long NLabeled, string Metric, double? Value,
    double? Difference, double? CiLow, double? CiHigh, double? Statistic, double? PValue, string? Test,
    double? SampleRatioChiSquare, double? SampleRatioPValue, bool? SampleRatioMismatch, bool? Significant, string? Verdict);

/// <summary>
/// mad.compare's rows and the notices raised while computing them; <paramref name="Since"/>: when the current split
/// began (mad.split_began), the predictions scored before it are not counted (NULL: all are).
/// </summary>
public sealed record ComparisonReport(IReadOnlyList<ComparisonRow> Rows, IReadOnlyList<string> Notices, DateTimeOffset? Since = null);

/// <summary>The metrics of mad.performance, in its order, and what each is for.</summary>
public static class OutcomeMetricNames
{
    public static readonly IReadOnlyList<string> Classifier = ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "ece", "cbpe_accuracy"];

    public static readonly IReadOnlyList<string> Regressor = ["mae", "rmse", "mape", "mean_error"];

    /// <summary>Metrics where a lower value is better (mad.compare's verdict).</summary>
    public static bool LowerIsBetter(string metric) => metric is "log_loss" or "ece" or "mae" or "rmse" or "mape";
}

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// One metric of one column in one window, as <c>mad.drift</c> returns it. <see cref="Value"/> and
/// <see cref="Threshold"/> are null when the window has no rows to compare (then <see cref="Drifted"/> is false).
/// </summary>
/// <param name="Metric">One of <see cref="DriftEvaluator.MetricNames"/>.</param>
public sealed record DriftMetric(string Metric, double? Value, double? Threshold, bool Drifted);

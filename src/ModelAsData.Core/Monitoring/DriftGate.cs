using System.Globalization;

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// The drift gate's decision (docs/MONITORING.md, "The drift gate"), as PostgreSQL's mad.drift_gate_tests and
/// mad.gate_drift make it (sql/postgres/044_1_drift_gate_family_wise.sql), for the embedded store. The family is every
/// p-value of the judged input columns of every source of counts: ks_p (numbers) and chi2_p (all). Holm–Bonferroni at
/// <see cref="Alpha"/> over it; a column fails when one of its tests is rejected and a distance the test pairs with
/// (ks_p: ks, wasserstein; chi2_p: psi, js, linf) is beyond its threshold. Pure and thread-safe.
/// </summary>
public static class DriftGate
{
    /// <summary>The family-wise chance of refusing a canary that does not drift.</summary>
    public const double Alpha = 0.01;

    /// <summary>
    /// The tests of one step in Holm's order (smallest p first, then source, column, metric, as 044_1 sorts them),
    /// from each judged column's metrics (<see cref="DriftEvaluator.Evaluate(ColumnProfile, IReadOnlyList{long}, long)"/>).
    /// </summary>
    public static IReadOnlyList<DriftGateTest> Tests(IEnumerable<DriftGateColumn> columns, double alpha = Alpha)
    {
        var all = columns.ToList();
        var ranked = all
            .SelectMany(c => c.Metrics.Where(m => m.Metric is "ks_p" or "chi2_p" && m.Value is not null).Select(m => (Column: c, Metric: m.Metric, P: m.Value!.Value)))
            .OrderBy(t => t.P).ThenBy(t => t.Column.CountsOf, StringComparer.Ordinal).ThenBy(t => t.Column.Column, StringComparer.Ordinal)
            .ThenBy(t => t.Metric, StringComparer.Ordinal)
            .ToList();
        var tests = new List<DriftGateTest>(ranked.Count);
        var adjusted = 0.0;
        for (var rank = 1; rank <= ranked.Count; rank++)
        {
            var (column, metric, p) = ranked[rank - 1];
            adjusted = Math.Min(1, Math.Max(adjusted, (ranked.Count - rank + 1) * p)); // Holm's step-down: never below an earlier one
            var rejected = adjusted <= alpha;
            var pairs = metric == "ks_p" ? new[] { "ks", "wasserstein" } : ["psi", "js", "linf"];
            var distance = column.Metrics
                .Where(m => m.Drifted && pairs.Contains(m.Metric) && m.Value is not null && m.Threshold is not null)
                .OrderByDescending(m => m.Value!.Value / m.Threshold!.Value).ThenBy(m => m.Metric, StringComparer.Ordinal)
                .FirstOrDefault();
            tests.Add(new DriftGateTest(column.CountsOf, column.Column, metric, p, adjusted, ranked.Count, rejected, distance?.Metric, distance?.Value, distance?.Threshold,
                rejected && distance is not null, column.BaselineRows, column.CurrentRows));
        }

        return tests;
    }

    /// <summary>Why the canary fails the gate, in mad.gate_drift's words; null when it passes.</summary>
    public static string? Failure(IReadOnlyList<DriftGateTest> tests, int canary, DateTimeOffset since)
    {
        var failed = tests.Where(t => t.Failed).OrderBy(t => t.AdjustedP).ThenBy(t => t.CountsOf, StringComparer.Ordinal)
            .ThenBy(t => t.Column, StringComparer.Ordinal).ThenBy(t => t.Metric, StringComparer.Ordinal).ToList();
        if (failed.Count == 0)
        {
            return null;
        }

        var first = failed[0];
        return string.Create(CultureInfo.InvariantCulture,
            $"the canary (version {canary}) drifted on {failed.Count} input test(s) since {since.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC (Holm-Bonferroni at 0.01 over {first.Tests} tests); " +
            $"first: {first.CountsOf}.{first.Column} {first.Metric} = {first.P:0.00e+00} (adjusted {first.AdjustedP:0.00e+00}), " +
            $"{first.Distance} = {Math.Round(first.DistanceValue!.Value, 4)} > threshold {Math.Round(first.DistanceThreshold!.Value, 4)} ({first.CurrentRows} rows against a baseline of {first.BaselineRows})");
    }
}

/// <summary>One judged input column of one source of counts (a prediction table, or 'online:&lt;model&gt;') and its metrics.</summary>
public sealed record DriftGateColumn(string CountsOf, string Column, IReadOnlyList<DriftMetric> Metrics, long BaselineRows, long CurrentRows);

/// <summary>One test of the gate: its p, Holm-adjusted p among <paramref name="Tests"/>, and the distance it pairs with that is furthest beyond its threshold.</summary>
public sealed record DriftGateTest(string CountsOf, string Column, string Metric, double P, double AdjustedP, int Tests, bool Rejected,
    string? Distance, double? DistanceValue, double? DistanceThreshold, bool Failed, long BaselineRows, long CurrentRows);

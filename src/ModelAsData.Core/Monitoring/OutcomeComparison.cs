using System.Globalization;

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// mad.compare (sql/postgres/027_2_compare.sql) in-process, for the embedded store: from one table's metrics over one
/// window of everything served, the champion's and the canary's rows with the test of the difference, the sample-ratio
/// check and the verdict, in the same words. Repeated looks: the verdict stays "interim" until both arms have
/// <c>horizon</c> labelled rows (docs/OUTCOMES.md).
/// </summary>
public static class OutcomeComparison
{
    /// <summary>The one window mad.compare reads: 100,000 days from 2000-01-03.</summary>
    public static readonly TimeSpan Everything = TimeSpan.FromDays(100_000);

    private static readonly string[] s_known = [.. OutcomeMetricNames.Classifier, .. OutcomeMetricNames.Regressor];

    /// <summary>The metric asked for, or a message naming the ones there are.</summary>
    public static void Validate(string? metric)
    {
        if (metric is not null && !s_known.Contains(metric, StringComparer.Ordinal))
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"There is no metric '{metric}'. Classifiers: accuracy, precision, recall (z-test), log_loss (Welch); regressors: mae, mape, mean_error (Welch).");
        }
    }

    /// <summary>The rows of one prediction table: none when neither arm served rows of it.</summary>
    public static IReadOnlyList<ComparisonRow> Compare(string table, IReadOnlyList<OutcomeMetric> metrics, int champion, int? canary, double? percent, string? metric, long horizon)
    {
        var arms = metrics.Where(m => (m.Arm == "champion" && m.Version == champion) || (m.Arm == "canary" && m.Version == canary)).ToList();
        var chosen = metric ?? arms.Select(m => m.Metric).FirstOrDefault(m => m is "accuracy" or "mae");
        var a = arms.FirstOrDefault(m => m.Arm == "champion" && m.Metric == chosen);
        var b = arms.FirstOrDefault(m => m.Arm == "canary" && m.Metric == chosen);
        if (chosen is null || (a is null && b is null))
        {
            return [];
        }

        CompareStatistics.Test test = default;
        string? used = null;
        (double ChiSquare, double PValue, bool Mismatch)? ratio = null;
        if (a is not null && b is not null)
        {
            if (a.Successes is { } sa && b.Successes is { } sb)
            {
                (test, used) = (CompareStatistics.Proportion(sa, a.Trials!.Value, sb, b.Trials!.Value), "two-proportion z");
            }
            else if (a.Variance is not null && b.Variance is not null)
            {
                (test, used) = (a.Value is { } va && b.Value is { } vb ? CompareStatistics.Welch(va, a.Variance, a.Trials ?? 0, vb, b.Variance, b.Trials ?? 0) : default, "welch t");
            }
            else
            {
                (test, used) = (new CompareStatistics.Test(b.Value - a.Value, null, null, null, null), "none (not a rate or a mean)");
            }

            if (N(a) is { } na && N(b) is { } nb)
            {
                ratio = CompareStatistics.SampleRatio(na, nb, percent);
            }
        }

        var rows = new List<ComparisonRow>();
        if (a is not null)
        {
            rows.Add(new ComparisonRow(table, "champion", champion, N(a), a.NLabeled, chosen, a.Value, null, null, null, null, null, null, null, null, null, null, null));
        }

        if (b is not null)
        {
            var p = test.PValue;
            var below = a is not null && Math.Min(a.NLabeled, b.NLabeled) < horizon;
            var verdict = a is null ? "no champion rows to compare with"
                : ratio?.Mismatch == true ? FormattableString.Invariant(
                    $"sample ratio mismatch (chi-square {Math.Round(ratio.Value.ChiSquare, 1, MidpointRounding.AwayFromZero):0.0} against {percent!.Value.ToString("R", CultureInfo.InvariantCulture)} %): the split is broken; do not trust the comparison")
                : below ? $"interim: {a.NLabeled} and {b.NLabeled} labelled rows, below the horizon of {horizon} per arm; do not act on the p-value yet"
                : p is null ? "no test for this metric"
                : p >= 0.05 ? "no significant difference"
                : chosen == "mean_error" ? "the canary's mean error differs significantly"
                : (test.Difference < 0) == OutcomeMetricNames.LowerIsBetter(chosen) ? "canary significantly better"
                : "canary significantly worse";
            rows.Add(new ComparisonRow(table, "canary", canary!.Value, N(b), b.NLabeled, chosen, b.Value, test.Difference, test.CiLow, test.CiHigh, test.Statistic, p, used,
                ratio?.ChiSquare, ratio?.PValue, ratio?.Mismatch, a is null || p is null || below ? null : p < 0.05, verdict));
        }

        return rows;
    }

    /// <summary>mad.compare's notice (050_2): from when both arms are counted, and under which split.</summary>
    public static string CountedSince(DateTimeOffset since, string model, string alias, int champion, int? canary, double? percent) =>
        FormattableString.Invariant($"Counted only predictions scored since {since.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}, when {model}@{alias} began serving ") +
        (canary is { } c
            ? FormattableString.Invariant($"version {champion} with version {c} on {percent!.Value.ToString("R", CultureInfo.InvariantCulture)} % as the canary")
            : FormattableString.Invariant($"version {champion} alone")) +
        ": earlier ones were served under another split.";

    /// <summary>The arm's scored rows: round(n_labeled / coverage), NULL without labels, as mad.compare computes it.</summary>
    private static long? N(OutcomeMetric m) => m.Coverage == 0 ? null : (long)Math.Round(m.NLabeled / m.Coverage, MidpointRounding.AwayFromZero);
}

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// Compares a window's counts with a baseline over the baseline's bins, metric by metric, with thresholds that grow
/// for small samples (docs/MONITORING.md, "Thresholds"). mad.drift_metric_values in sql/postgres/018_drift.sql is the
/// same rule; the contract tests hold the two equal. Pure and thread-safe.
/// </summary>
public static class DriftEvaluator
{
    /// <summary>Below these a difference is too small to matter, however many rows show it.</summary>
    public const double PsiFloor = 0.1;

    public const double DistanceFloor = 0.1;

    /// <summary>A p-value below this, with its distance past the floor, is drift.</summary>
    public const double PValue = 0.01;

    /// <summary>The two-sample KS critical value at 1 %: c(α) = √(−ln(α/2)/2).</summary>
    public const double KsCritical = 1.6276236307187293;

    /// <summary>z at 0.5 % (two-sided 1 %) times the largest standard deviation of a share (½).</summary>
    public const double ShareCritical = 1.2879146517744502;

    /// <summary>The metric words of the CLI, the SQL and the report, in the order rows come.</summary>
    public static readonly IReadOnlyList<string> MetricNames = ["psi", "js", "wasserstein", "ks", "ks_p", "linf", "chi2_p"];

    /// <summary>The metrics of a column's type: numbers get psi, js, wasserstein, ks, ks_p, chi2_p; categories psi, js, linf, chi2_p.</summary>
    public static IReadOnlyList<string> MetricsOf(ProfileType type) =>
        type == ProfileType.Numeric ? ["psi", "js", "wasserstein", "ks", "ks_p", "chi2_p"] : ["psi", "js", "linf", "chi2_p"];

    /// <summary>
    /// The metrics of <paramref name="current"/> (counts per baseline bin) and <paramref name="currentNulls"/>
    /// against the baseline. Nulls are a bin of their own in psi, js, linf and chi2_p; ks and wasserstein compare the
    /// non-null values. A window without rows gives every metric with no value.
    /// </summary>
    public static IReadOnlyList<DriftMetric> Evaluate(ColumnProfile baseline, IReadOnlyList<long> current, long currentNulls) =>
        Evaluate(baseline.Type, baseline.Counts, baseline.NullCount, current, currentNulls, baseline.Type == ProfileType.Numeric ? baseline.Positions() : null, baseline.Spread);

    /// <summary>As <see cref="Evaluate(ColumnProfile, IReadOnlyList{long}, long)"/>, from the bare counts.</summary>
    public static IReadOnlyList<DriftMetric> Evaluate(ProfileType type, IReadOnlyList<long> baseline, long baselineNulls, IReadOnlyList<long> current, long currentNulls,
        double[]? positions, double spread)
    {
        if (baseline.Count != current.Count)
        {
            throw new ArgumentException($"{baseline.Count} baseline bins against {current.Count} current ones.", nameof(current));
        }

        var bins = baseline.Count;
        var all = (B: new double[bins + 1], C: new double[bins + 1]);
        for (var i = 0; i < bins; i++)
        {
            all.B[i] = baseline[i];
            all.C[i] = current[i];
        }

        all.B[bins] = baselineNulls;
        all.C[bins] = currentNulls;
        var nb = all.B.Sum();
        var nc = all.C.Sum();
        var nbValues = nb - baselineNulls;
        var ncValues = nc - currentNulls;
        var metrics = new List<DriftMetric>();
        if (nc <= 0 || nb <= 0)
        {
            foreach (var metric in MetricsOf(type))
            {
                metrics.Add(new DriftMetric(metric, null, null, false));
            }

            return metrics;
        }

        var scale = (1 / nb) + (1 / nc);
        var nonEmpty = Enumerable.Range(0, bins + 1).Count(i => all.B[i] + all.C[i] > 0);
        var psi = DriftMetrics.Psi(all.B, all.C);
        var psiThreshold = Math.Max(PsiFloor, Gamma.ChiSquare99(nonEmpty - 1) * scale);
        metrics.Add(Row("psi", psi, psiThreshold));
        // JSD ≈ PSI / (8 ln 2) for small differences: the distance that matches the PSI threshold.
        metrics.Add(Row("js", DriftMetrics.JensenShannon(all.B, all.C), Math.Sqrt(psiThreshold / (8 * Math.Log(2)))));
        double ks = 0;
        if (type == ProfileType.Numeric)
        {
            if (ncValues > 0 && nbValues > 0)
            {
                var valueScale = (1 / nbValues) + (1 / ncValues);
                var b = all.B.AsSpan(0, bins);
                var c = all.C.AsSpan(0, bins);
                metrics.Add(Row("wasserstein", DriftMetrics.Wasserstein(b, c, positions, spread), Math.Max(DistanceFloor, KsCritical * Math.Sqrt(valueScale))));
                ks = DriftMetrics.KolmogorovSmirnov(b, c);
                var ksThreshold = Math.Max(DistanceFloor, KsCritical * Math.Sqrt(valueScale));
                metrics.Add(Row("ks", ks, ksThreshold));
                var ksP = DriftMetrics.KolmogorovSmirnovP(ks, nbValues, ncValues);
                metrics.Add(new DriftMetric("ks_p", ksP, PValue, ksP < PValue && ks > ksThreshold));
            }
            else
            {
                metrics.Add(new DriftMetric("wasserstein", null, null, false));
                metrics.Add(new DriftMetric("ks", null, null, false));
                metrics.Add(new DriftMetric("ks_p", null, null, false));
            }
        }
        else
        {
            metrics.Add(Row("linf", DriftMetrics.LInfinity(all.B, all.C), Math.Max(DistanceFloor, ShareCritical * Math.Sqrt(scale))));
        }

        var chi2P = type == ProfileType.Numeric ? DriftMetrics.ChiSquareP(PoolEmptyOuterBins(all.B, bins), PoolEmptyOuterBins(all.C, bins, all.B))
            : DriftMetrics.ChiSquareP(all.B, all.C);
        metrics.Add(new DriftMetric("chi2_p", chi2P, PValue, chi2P < PValue && psi > psiThreshold));
        return metrics;
    }

    /// <summary>
    /// The counts the χ² test compares for a numeric column (049_2, docs/MONITORING.md "p-values under no drift"): an
    /// under- or overflow bin the baseline left empty — always, when its edges are its own quantiles, since its min and
    /// max are its outer edges — is added to its inner neighbour. Otherwise one current value outside the baseline's
    /// range meets an expected count near 0 and rejects a window with no drift. <paramref name="baseline"/> decides
    /// which bins are empty (null: <paramref name="counts"/> are the baseline's); nulls (the last slot) stay apart.
    /// </summary>
    private static double[] PoolEmptyOuterBins(double[] counts, int bins, double[]? baseline = null)
    {
        baseline ??= counts;
        var pooled = (double[])counts.Clone();
        if (bins < 3)
        {
            return pooled;
        }

        if (baseline[0] == 0)
        {
            pooled[1] += pooled[0];
            pooled[0] = 0;
        }

        if (baseline[bins - 1] == 0)
        {
            pooled[bins - 2] += pooled[bins - 1];
            pooled[bins - 1] = 0;
        }

        return pooled;
    }

    private static DriftMetric Row(string metric, double value, double threshold) => new(metric, value, threshold, value > threshold);
}

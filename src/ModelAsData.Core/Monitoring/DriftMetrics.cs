namespace ModelAsData.Core.Monitoring;

/// <summary>
/// The drift metrics between two histograms over the same bins: a baseline's counts and a window's. The same formulas
/// are written in SQL in sql/postgres/018_drift.sql (mad.drift_metric_values); the contract tests hold the two equal.
/// Shares are counts over their total; a share of zero takes <see cref="Epsilon"/> where a logarithm needs it (PSI).
/// Pure and thread-safe.
/// </summary>
public static class DriftMetrics
{
    /// <summary>The share an empty bin takes in PSI, so a bin empty on one side costs a large but finite amount.</summary>
    public const double Epsilon = 1e-4;

    /// <summary>Population stability index: Σ (q − p) · ln(q / p), each share of 0 taken as <see cref="Epsilon"/>.</summary>
    public static double Psi(ReadOnlySpan<double> baseline, ReadOnlySpan<double> current)
    {
        var (bt, ct) = (Total(baseline), Total(current));
        var sum = 0.0;
        for (var i = 0; i < baseline.Length; i++)
        {
            var p = Floor(baseline[i] / bt);
            var q = Floor(current[i] / ct);
            sum += (q - p) * Math.Log(q / p);
        }

        return sum;
    }

    /// <summary>Jensen–Shannon distance, base 2 (the square root of the divergence, between 0 and 1).</summary>
    public static double JensenShannon(ReadOnlySpan<double> baseline, ReadOnlySpan<double> current)
    {
        var (bt, ct) = (Total(baseline), Total(current));
        var divergence = 0.0;
        for (var i = 0; i < baseline.Length; i++)
        {
            var p = baseline[i] / bt;
            var q = current[i] / ct;
            var m = (p + q) / 2;
            if (p > 0)
            {
                divergence += p * (Math.Log(p / m) / Math.Log(2)) / 2;
            }

            if (q > 0)
            {
                divergence += q * (Math.Log(q / m) / Math.Log(2)) / 2;
            }
        }

        return Math.Sqrt(Math.Max(0, divergence));
    }

    /// <summary>The largest gap between the two cumulative shares (binned two-sample Kolmogorov–Smirnov D).</summary>
    public static double KolmogorovSmirnov(ReadOnlySpan<double> baseline, ReadOnlySpan<double> current)
    {
        var (bt, ct) = (Total(baseline), Total(current));
        double fp = 0, fq = 0, d = 0;
        for (var i = 0; i < baseline.Length; i++)
        {
            fp += baseline[i] / bt;
            fq += current[i] / ct;
            d = Math.Max(d, Math.Abs(fp - fq));
        }

        return d;
    }

    /// <summary>
    /// The asymptotic p-value of a KS distance between samples of <paramref name="n1"/> and <paramref name="n2"/>
    /// rows: Q_KS((√nₑ + 0.12 + 0.11/√nₑ)·D) with nₑ = n1·n2/(n1+n2) (Stephens' correction).
    /// </summary>
    public static double KolmogorovSmirnovP(double d, double n1, double n2)
    {
        var ne = Math.Sqrt(n1 * n2 / (n1 + n2));
        var lambda = (ne + 0.12 + (0.11 / ne)) * d;
        var a2 = -2 * lambda * lambda;
        double fac = 2, sum = 0, before = 0;
        for (var j = 1; j <= 100; j++)
        {
            var term = fac * Math.Exp(a2 * j * j);
            sum += term;
            if (Math.Abs(term) <= 0.001 * before || Math.Abs(term) <= 1e-8 * sum)
            {
                return Math.Clamp(sum, 0, 1);
            }

            fac = -fac;
            before = Math.Abs(term);
        }

        return 1; // the series does not converge for λ near 0: no evidence of a difference
    }

    /// <summary>
    /// Wasserstein-1 between the histograms with each bin at <paramref name="positions"/>, divided by the baseline's
    /// spread (its standard deviation), so the value reads as "the mass moved this many baseline deviations".
    /// </summary>
    public static double Wasserstein(ReadOnlySpan<double> baseline, ReadOnlySpan<double> current, ReadOnlySpan<double> positions, double spread)
    {
        var (bt, ct) = (Total(baseline), Total(current));
        double fp = 0, fq = 0, sum = 0;
        for (var i = 0; i < baseline.Length - 1; i++)
        {
            fp += baseline[i] / bt;
            fq += current[i] / ct;
            sum += Math.Abs(fp - fq) * (positions[i + 1] - positions[i]);
        }

        return sum / (spread > 0 ? spread : 1);
    }

    /// <summary>The largest gap between the two shares of any one bin (L∞, for categories).</summary>
    public static double LInfinity(ReadOnlySpan<double> baseline, ReadOnlySpan<double> current)
    {
        var (bt, ct) = (Total(baseline), Total(current));
        var d = 0.0;
        for (var i = 0; i < baseline.Length; i++)
        {
            d = Math.Max(d, Math.Abs((baseline[i] / bt) - (current[i] / ct)));
        }

        return d;
    }

    /// <summary>
    /// The p-value of Pearson's χ² test that both counts come from one distribution (a 2 × bins table; bins empty on
    /// both sides are left out; degrees of freedom: the bins left − 1).
    /// </summary>
    public static double ChiSquareP(ReadOnlySpan<double> baseline, ReadOnlySpan<double> current)
    {
        var (bt, ct) = (Total(baseline), Total(current));
        var n = bt + ct;
        double statistic = 0;
        var bins = 0;
        for (var i = 0; i < baseline.Length; i++)
        {
            var column = baseline[i] + current[i];
            if (column <= 0)
            {
                continue;
            }

            bins++;
            var eb = bt * column / n;
            var ec = ct * column / n;
            statistic += ((baseline[i] - eb) * (baseline[i] - eb) / eb) + ((current[i] - ec) * (current[i] - ec) / ec);
        }

        return bins < 2 ? 1 : Gamma.UpperRegularized((bins - 1) / 2.0, statistic / 2);
    }

    private static double Floor(double share) => share > 0 ? share : Epsilon;

    private static double Total(ReadOnlySpan<double> counts)
    {
        var total = 0.0;
        foreach (var c in counts)
        {
            total += c;
        }

        return total > 0 ? total : 1;
    }
}

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// The tests of mad.compare, as sql/postgres/022_3_compare_statistics.sql and 027_2_compare.sql compute them, step for
/// step: the two-proportion z-test, Welch's t-test (its p-value by the incomplete beta function, its interval by
/// bisection) and the sample-ratio check; p-values through <see cref="Gamma.UpperRegularized"/> as mad.gamma_q.
/// </summary>
public static class CompareStatistics
{
    /// <summary>A test of arm b against arm a: the difference b − a with a 95 % interval, the statistic and the two-sided p-value.</summary>
    public readonly record struct Test(double? Difference, double? CiLow, double? CiHigh, double? Statistic, double? PValue);

    /// <summary>mad.proportion_test: unpooled standard error for the interval, pooled for z.</summary>
    public static Test Proportion(long successesA, long trialsA, long successesB, long trialsB)
    {
        if (trialsA == 0 || trialsB == 0)
        {
            return default; // no rate without trials
        }

        var pa = (double)successesA / trialsA;
        var pb = (double)successesB / trialsB;
        var pooled = (double)(successesA + successesB) / (trialsA + trialsB);
        var difference = pb - pa;
        var se = Math.Sqrt((pa * (1 - pa) / trialsA) + (pb * (1 - pb) / trialsB));
        var pooledSe = Math.Sqrt(pooled * (1 - pooled) * ((1.0 / trialsA) + (1.0 / trialsB)));
        double? z = pooledSe == 0 ? null : difference / pooledSe;
        return new Test(difference, difference - (1.959963984540054 * se), difference + (1.959963984540054 * se), z,
            z is { } v ? Gamma.UpperRegularized(0.5, v * v / 2) : null);
    }

    /// <summary>mad.welch_test, as scipy.stats.ttest_ind_from_stats(..., equal_var=False); empty without two rows and a variance per arm.</summary>
    public static Test Welch(double meanA, double? varianceA, long nA, double meanB, double? varianceB, long nB)
    {
        if (nA < 2 || nB < 2 || varianceA is not { } va || varianceB is not { } vb)
        {
            return default;
        }

        var difference = meanB - meanA;
        var se = Math.Sqrt((va / nA) + (vb / nB));
        if (se == 0)
        {
            return default;
        }

        var t = difference / se;
        var df = Math.Pow(se, 4) / ((Math.Pow(va / nA, 2) / (nA - 1)) + (Math.Pow(vb / nB, 2) / (nB - 1)));
        double low = 0, high = 1000;
        for (var i = 0; i < 100 && high - low >= 1e-12; i++)
        {
            var mid = (low + high) / 2;
            if (StudentTP(mid, df) > 0.05)
            {
                low = mid;
            }
            else
            {
                high = mid;
            }
        }

        var quantile = (low + high) / 2;
        return new Test(difference, difference - (quantile * se), difference + (quantile * se), t, StudentTP(t, df));
    }

    /// <summary>mad.sample_ratio_check: χ² on one degree of freedom of the split against the canary's percent, flagged below p = 0.001.</summary>
    public static (double ChiSquare, double PValue, bool Mismatch)? SampleRatio(long champion, long canary, double? percent)
    {
        double total = champion + canary;
        if (percent is not { } p || p <= 0 || p >= 100 || total == 0)
        {
            return null;
        }

        var expectedCanary = total * p / 100;
        var expectedChampion = total - (total * p / 100);
        var chi = (Math.Pow(canary - expectedCanary, 2) / expectedCanary) + (Math.Pow(champion - expectedChampion, 2) / expectedChampion);
        var pValue = Gamma.UpperRegularized(0.5, chi / 2);
        return (chi, pValue, pValue < 0.001);
    }

    /// <summary>The two-sided p-value of Student's t with <paramref name="df"/> degrees of freedom (mad.student_t_p).</summary>
    public static double StudentTP(double t, double df) => IncompleteBeta(df / 2, 0.5, df / (df + (t * t)));

    /// <summary>I_x(a, b), the regularized incomplete beta function (Numerical Recipes 2nd ed. §6.4, mad.incomplete_beta).</summary>
    public static double IncompleteBeta(double a, double b, double x)
    {
        if (x <= 0)
        {
            return 0;
        }

        if (x >= 1)
        {
            return 1;
        }

        const double tiny = 1e-300;
        var flip = x > (a + 1) / (a + b + 2);
        var (p, q, z) = flip ? (b, a, 1 - x) : (a, b, x);
        var c = 1.0;
        var d = 1 - ((p + q) * z / (p + 1));
        d = 1 / (Math.Abs(d) < tiny ? tiny : d);
        var h = d;
        for (var m = 1; m <= 1000; m++)
        {
            var m2 = 2 * m;
            var aa = m * (q - m) * z / ((p - 1 + m2) * (p + m2));
            d = 1 + (aa * d);
            d = Math.Abs(d) < tiny ? tiny : d;
            c = 1 + (aa / c);
            c = Math.Abs(c) < tiny ? tiny : c;
            d = 1 / d;
            h *= d * c;
            aa = -(p + m) * (p + q + m) * z / ((p + m2) * (p + 1 + m2));
            d = 1 + (aa * d);
            d = Math.Abs(d) < tiny ? tiny : d;
            c = 1 + (aa / c);
            c = Math.Abs(c) < tiny ? tiny : c;
            d = 1 / d;
            var del = d * c;
            h *= del;
            if (Math.Abs(del - 1) < 3e-16)
            {
                break;
            }
        }

        var front = Gamma.LogGamma(p + q) - Gamma.LogGamma(p) - Gamma.LogGamma(q) + (p * Math.Log(z)) + (q * Math.Log(1 - z));
        front = front < -700 ? 0 : Math.Exp(front) * h / p;
        return Math.Max(0, Math.Min(1, flip ? 1 - front : front));
    }
}

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// The incomplete gamma function behind the χ² p-value and quantile, as Numerical Recipes (2nd ed., §6.1–6.2) writes
/// it; mad.gamma_q in sql/postgres/018_drift.sql is the same algorithm step for step.
/// </summary>
public static class Gamma
{
    private static readonly double[] s_lanczos = [76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5];

    /// <summary>ln Γ(x) for x &gt; 0 (Lanczos).</summary>
    public static double LogGamma(double x)
    {
        var y = x;
        var tmp = x + 5.5;
        tmp -= (x + 0.5) * Math.Log(tmp);
        var series = 1.000000000190015;
        foreach (var c in s_lanczos)
        {
            y += 1;
            series += c / y;
        }

        return -tmp + Math.Log(2.5066282746310005 * series / x);
    }

    /// <summary>Q(a, x) = Γ(a, x) / Γ(a), the upper regularized incomplete gamma function.</summary>
    public static double UpperRegularized(double a, double x)
    {
        if (x <= 0)
        {
            return 1;
        }

        var gln = LogGamma(a);
        if (x < a + 1)
        {
            // The series for P(a, x).
            var ap = a;
            var del = 1.0 / a;
            var sum = del;
            for (var n = 0; n < 500; n++)
            {
                ap += 1;
                del *= x / ap;
                sum += del;
                if (Math.Abs(del) < Math.Abs(sum) * 3e-16)
                {
                    break;
                }
            }

            return Math.Clamp(1 - (sum * Math.Exp(-x + (a * Math.Log(x)) - gln)), 0, 1);
        }

        // The continued fraction for Q(a, x) (modified Lentz).
        const double tiny = 1e-300;
        var b = x + 1 - a;
        var c = 1 / tiny;
        var d = 1 / b;
        var h = d;
        for (var i = 1; i <= 500; i++)
        {
            var an = -i * (i - a);
            b += 2;
            d = (an * d) + b;
            d = Math.Abs(d) < tiny ? tiny : d;
            c = b + (an / c);
            c = Math.Abs(c) < tiny ? tiny : c;
            d = 1 / d;
            var del = d * c;
            h *= del;
            if (Math.Abs(del - 1) < 3e-16)
            {
                break;
            }
        }

        return Math.Clamp(Math.Exp(-x + (a * Math.Log(x)) - gln) * h, 0, 1);
    }

    /// <summary>The 99th percentile of χ² with <paramref name="df"/> degrees of freedom (Wilson–Hilferty).</summary>
    public static double ChiSquare99(double df)
    {
        const double z = 2.3263478740408408;
        var k = Math.Max(df, 1);
        var t = 1 - (2 / (9 * k)) + (z * Math.Sqrt(2 / (9 * k)));
        return k * t * t * t;
    }
}

using System.Globalization;
using System.Text;
using ModelAsData.Core.Monitoring;
using static ModelAsData.Cli.Reports.HtmlReport;

namespace ModelAsData.Cli.Reports;

/// <summary>
/// The outcome reports of <c>mad monitor performance --html</c> and <c>mad monitor compare --html</c>: the notices,
/// the numbers as a table, and per metric a plot of its value per window with one line per version and arm (and
/// one of coverage, the share of scored rows that have a label). Self-contained as every <see cref="HtmlReport"/>.
/// </summary>
public static class OutcomeReport
{
    private const string Css = "tr.worse td{background:#fde2e2}tr.better td{background:#e2f5e2}ul.notices li{color:#8a5a00}" +
        "section.plot{display:inline-block;vertical-align:top;margin:0 1em 1em 0}";

    // One colour per version and arm, in the order the series are first met (ScottPlot's Category10).
    private static readonly string[] s_colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    public static string RenderPerformance(string table, TimeSpan window, DateTimeOffset? asOf, PerformanceReport report)
    {
        var html = Begin($"Performance of {table}", "Metrics, coverage and windows: docs/OUTCOMES.md.", Css);
        html.Append("<p>Windows of ").Append(E(Length(window))).Append(asOf is { } a ? $", as known at {E(a.UtcDateTime.ToString("u", CultureInfo.InvariantCulture))}" : "")
            .Append("; coverage is the share of a window's scored rows that have a label.</p>\n");
        Notices(html, report.Notices);
        MetricTable(html, report.Rows);
        html.Append("<h2>Per window</h2>\n");
        Plots(html, report.Rows);
        return End(html);
    }

    /// <param name="windows">The arms' metrics per window (mad.performance), for the plots; the same rows as the comparison (scored since the split began).</param>
    public static string RenderComparison(string model, string alias, ComparisonReport report, IReadOnlyDictionary<string, PerformanceReport> windows)
    {
        var html = Begin($"Champion against canary: {model}@{alias}", "Tests, horizon and the sample-ratio check: docs/OUTCOMES.md.", Css);
        Notices(html, report.Notices);
        html.Append("<table id=\"comparison\"><tr><th>prediction table</th><th>arm</th><th>version</th><th>n</th><th>n labelled</th><th>metric</th><th>value</th>")
            .Append("<th>difference</th><th>95 % interval</th><th>p-value</th><th>test</th><th>sample ratio χ²</th><th>mismatch</th><th>verdict</th></tr>\n");
        foreach (var r in report.Rows)
        {
            var css = r.Verdict switch { { } v when v.Contains("worse", StringComparison.Ordinal) || v.Contains("mismatch", StringComparison.Ordinal) => " class=\"worse\"",
                { } v when v.Contains("better", StringComparison.Ordinal) => " class=\"better\"", _ => "" };
            html.Append("<tr").Append(css).Append("><td class=\"t\">").Append(E(r.PredictionTable)).Append("</td><td class=\"t\">").Append(r.Arm).Append("</td><td>").Append(r.Version)
                .Append("</td><td>").Append(Count(r.N)).Append("</td><td>").Append(Count(r.NLabeled)).Append("</td><td class=\"t\">").Append(E(r.Metric))
                .Append("</td><td>").Append(Number(r.Value)).Append("</td><td>").Append(Number(r.Difference)).Append("</td><td>")
                .Append(r.CiLow is { } low && r.CiHigh is { } high ? $"{Number(low)} to {Number(high)}" : "–").Append("</td><td>").Append(E(PValue(r.PValue)))
                .Append("</td><td class=\"t\">").Append(E(r.Test ?? "–")).Append("</td><td>").Append(Number(r.SampleRatioChiSquare)).Append("</td><td class=\"t\">")
                .Append(r.SampleRatioMismatch switch { true => "yes", false => "no", null => "–" }).Append("</td><td class=\"t\">").Append(E(r.Verdict ?? "")).Append("</td></tr>\n");
        }

        html.Append("</table>\n");
        foreach (var (table, performance) in windows)
        {
            var metric = report.Rows.First(r => r.PredictionTable == table).Metric;
            html.Append("<h2>").Append(E(table)).Append(" per window</h2>\n");
            Plots(html, performance.Rows.Where(r => r.Metric == metric).ToList());
        }

        return End(html);
    }

    private static void Notices(StringBuilder html, IReadOnlyList<string> notices)
    {
        if (notices.Count == 0)
        {
            return;
        }

        html.Append("<ul class=\"notices\">\n");
        foreach (var notice in notices)
        {
            html.Append("<li>").Append(E(notice)).Append("</li>\n");
        }

        html.Append("</ul>\n");
    }

    /// <summary>One row per window, version and arm; one column per metric.</summary>
    private static void MetricTable(StringBuilder html, IReadOnlyList<PerformanceRow> rows)
    {
        var metrics = rows.Select(r => r.Metric).Distinct().ToList();
        html.Append("<table id=\"metrics\"><tr><th>window</th><th>version</th><th>arm</th><th>n labelled</th><th>coverage</th>");
        foreach (var m in metrics)
        {
            html.Append("<th>").Append(E(m)).Append("</th>");
        }

        html.Append("</tr>\n");
        foreach (var g in rows.GroupBy(r => (r.WindowStart, r.WindowEnd, r.Version, r.Arm)))
        {
            html.Append("<tr><td class=\"t\">").Append(E(Window(g.Key.WindowStart, g.Key.WindowEnd))).Append("</td><td>").Append(g.Key.Version).Append("</td><td class=\"t\">")
                .Append(E(g.Key.Arm)).Append("</td><td>").Append(Count(g.First().NLabeled)).Append("</td><td>").Append(Percent(g.First().Coverage)).Append("</td>");
            foreach (var m in metrics)
            {
                html.Append("<td>").Append(Number(g.FirstOrDefault(r => r.Metric == m)?.Value)).Append("</td>");
            }

            html.Append("</tr>\n");
        }

        html.Append("</table>\n");
    }

    /// <summary>Per metric, then coverage: its value per window, one line per version and arm.</summary>
    private static void Plots(StringBuilder html, IReadOnlyList<PerformanceRow> rows)
    {
        var series = rows.Select(r => (r.Version, r.Arm)).Distinct().OrderBy(s => s.Version).ThenBy(s => s.Arm, StringComparer.Ordinal).ToList();
        foreach (var metric in rows.Select(r => r.Metric).Distinct().Append("coverage"))
        {
            var points = series.Select(s => (Series: s, Points: rows
                .Where(r => (r.Version, r.Arm) == s && (metric == "coverage" || r.Metric == metric))
                .GroupBy(r => r.WindowStart)
                .Select(g => (At: g.Key, Value: metric == "coverage" ? g.First().Coverage : g.First().Value))
                .Where(p => p.Value is not null).OrderBy(p => p.At).ToList())).ToList();
            html.Append("<section class=\"plot\" data-metric=\"").Append(E(metric)).Append("\"><h3>").Append(E(metric)).Append("</h3>\n");
            if (points.All(p => p.Points.Count == 0))
            {
                html.Append("<p class=\"empty\">No value in any window: no labelled row yet.</p>\n</section>\n");
                continue;
            }

            html.Append(Plot(metric, points.Select(p => (Label: $"version {p.Series.Version} {p.Series.Arm}", Colour: s_colours[series.IndexOf(p.Series) % s_colours.Length],
                Points: (IReadOnlyList<(DateTimeOffset At, double? Value)>)p.Points)).ToList())).Append("\n</section>\n");
        }
    }

    private static string Plot(string metric, IReadOnlyList<(string Label, string Colour, IReadOnlyList<(DateTimeOffset At, double? Value)> Points)> series)
    {
        var plot = new ScottPlot.Plot();
        foreach (var (label, colour, points) in series.Where(s => s.Points.Count > 0))
        {
            var line = plot.Add.Scatter(points.Select(p => p.At.UtcDateTime.ToOADate()).ToArray(), points.Select(p => p.Value!.Value).ToArray());
            line.LegendText = label;
            line.Color = ScottPlot.Color.FromHex(colour);
            line.LineWidth = 2;
            line.MarkerSize = 8;
        }

        plot.Axes.DateTimeTicksBottom();
        plot.Axes.Right.MinimumSize = 40; // room for the last date label
        plot.Axes.Left.Label.Text = metric == "coverage" ? "share of rows labelled" : metric;
        if (Bounded(metric))
        {
            plot.Axes.SetLimitsY(-0.02, 1.02); // a rate: the whole scale, so a drop looks as large as it is
        }

        plot.Legend.IsVisible = true;
        plot.Legend.Alignment = ScottPlot.Alignment.LowerLeft;
        return Svg(plot, 520, 320);
    }

    /// <summary>Metrics between 0 and 1.</summary>
    private static bool Bounded(string metric) => metric is "accuracy" or "precision" or "recall" or "f1" or "roc_auc" or "ece" or "cbpe_accuracy" or "coverage";

    /// <summary>"1 day", "7 days", "12 hours".</summary>
    internal static string Length(TimeSpan window) => window.TotalDays >= 1 && window.TotalDays % 1 == 0
        ? (window.TotalDays == 1 ? "1 day" : $"{window.TotalDays:0} days")
        : (window.TotalHours == 1 ? "1 hour" : $"{window.TotalHours:0.##} hours");

    private static string Count(long? n) => n is { } v ? v.ToString("N0", CultureInfo.InvariantCulture) : "–";

    private static string Percent(double share) => share.ToString("0.#%", CultureInfo.InvariantCulture);
}

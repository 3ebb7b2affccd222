using System.Globalization;
using System.Net;
using System.Text;
using ModelAsData.Core.Monitoring;

namespace ModelAsData.Cli.Reports;

/// <summary>
/// The drift report: one self-contained HTML file (<see cref="HtmlReport"/>) with the rows
/// each window holds, the metric table with drifted columns first, and per column the baseline's and the current
/// histograms side by side as an inline SVG plot drawn by ScottPlot. Pure: the same rows give the same file.
/// </summary>
public static class DriftReport
{
    public static string Render(string table, IReadOnlyList<DriftRow> rows, IReadOnlyList<HistogramBin> bins)
    {
        var html = HtmlReport.Begin($"Drift of {table}", "Metrics and thresholds: docs/MONITORING.md.",
            "tr.drifted td{background:#fde2e2}section.column{display:inline-block;vertical-align:top;margin:0 1em 1em 0}");

        html.Append("<h2>Rows per window</h2>\n<table id=\"rows\"><tr><th>window</th><th>version</th><th>baseline rows</th><th>rows</th></tr>\n");
        foreach (var w in rows.GroupBy(r => (r.WindowStart, r.WindowEnd, r.Version)).OrderBy(g => g.Key.WindowStart).ThenBy(g => g.Key.Version))
        {
            html.Append("<tr><td class=\"t\">").Append(E(Window(w.Key.WindowStart, w.Key.WindowEnd))).Append("</td><td>").Append(w.Key.Version)
                .Append("</td><td>").Append(w.Max(r => r.NBaseline).ToString("N0", CultureInfo.InvariantCulture))
                .Append("</td><td>").Append(w.Max(r => r.NCurrent).ToString("N0", CultureInfo.InvariantCulture)).Append("</td></tr>\n");
        }

        html.Append("</table>\n<h2>Metrics</h2>\n<table id=\"metrics\"><tr><th>window</th><th>version</th><th>column</th><th>kind</th><th>metric</th><th>value</th><th>threshold</th><th>drifted</th><th>n_baseline</th><th>n_current</th></tr>\n");
        foreach (var r in rows.OrderByDescending(r => r.Drifted).ThenByDescending(r => rows.Any(o => o.Drifted && o.Column == r.Column && o.Version == r.Version))
                     .ThenBy(r => r.WindowStart).ThenBy(r => r.Version).ThenBy(r => r.Kind, StringComparer.Ordinal).ThenBy(r => r.Column, StringComparer.Ordinal))
        {
            html.Append(r.Drifted ? "<tr class=\"drifted\">" : "<tr>").Append("<td class=\"t\">").Append(E(Window(r.WindowStart, r.WindowEnd))).Append("</td><td>").Append(r.Version)
                .Append("</td><td class=\"t\">").Append(E(r.Column)).Append("</td><td class=\"t\">").Append(r.Kind).Append("</td><td class=\"t\">").Append(r.Metric)
                .Append("</td><td>").Append(Number(r.Value)).Append("</td><td>").Append(Number(r.Threshold)).Append("</td><td class=\"t\">").Append(r.Drifted ? "yes" : "no")
                .Append("</td><td>").Append(r.NBaseline).Append("</td><td>").Append(r.NCurrent).Append("</td></tr>\n");
        }

        html.Append("</table>\n<h2>Histograms</h2>\n<p>Share of rows per bin: the baseline against all windows of the report together.</p>\n");
        var drifted = rows.Where(r => r.Drifted).Select(r => (r.Version, r.Column, r.Kind)).ToHashSet();
        foreach (var column in bins.GroupBy(b => (b.Version, b.Column, b.Kind)).OrderByDescending(g => drifted.Contains(g.Key)).ThenBy(g => g.Key.Version).ThenBy(g => g.Key.Kind, StringComparer.Ordinal).ThenBy(g => g.Key.Column, StringComparer.Ordinal))
        {
            var merged = column.GroupBy(b => b.Bin).OrderBy(g => g.Key == -1 ? int.MaxValue : g.Key)
                .Select(g => (Label: g.First().Label, Baseline: g.First().Baseline, Current: g.Sum(b => b.Current)))
                .Where(b => b.Label != "null" || b.Baseline > 0 || b.Current > 0).ToList();
            html.Append("<section class=\"column\" data-column=\"").Append(E(column.Key.Column)).Append("\"><h3>").Append(E(column.Key.Column)).Append(" (").Append(column.Key.Kind)
                .Append(", version ").Append(column.Key.Version).Append(drifted.Contains(column.Key) ? ", drifted" : "").Append(")</h3>\n")
                .Append(Plot(merged)).Append("\n</section>\n");
        }

        return HtmlReport.End(html);
    }

    /// <summary>Baseline and current shares as side-by-side bars, bin labels under them.</summary>
    private static string Plot(IReadOnlyList<(string Label, long? Baseline, long Current)> bins)
    {
        var plot = new ScottPlot.Plot();
        var baselineTotal = Math.Max(1, bins.Sum(b => b.Baseline ?? 0));
        var currentTotal = Math.Max(1, bins.Sum(b => b.Current));
        var bars = new List<ScottPlot.Bar>();
        for (var i = 0; i < bins.Count; i++)
        {
            if (bins[i].Baseline is { } b)
            {
                bars.Add(new ScottPlot.Bar { Position = (i * 3) + 0.5, Value = 100.0 * b / baselineTotal, FillColor = ScottPlot.Color.FromHex("#7f7f7f") });
            }

            bars.Add(new ScottPlot.Bar { Position = (i * 3) + 1.5, Value = 100.0 * bins[i].Current / currentTotal, FillColor = ScottPlot.Color.FromHex("#d62728") });
        }

        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            bins.Select((b, i) => new ScottPlot.Tick((i * 3) + 1, b.Label)).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = ScottPlot.Alignment.MiddleLeft;
        plot.Axes.Left.Label.Text = "% of rows";
        plot.Legend.IsVisible = true;
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "baseline", FillColor = ScottPlot.Color.FromHex("#7f7f7f") });
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "current", FillColor = ScottPlot.Color.FromHex("#d62728") });
        plot.Axes.Margins(bottom: 0);
        return HtmlReport.Svg(plot, Math.Max(360, 40 * bins.Count), 300);
    }

    private static string Window(DateTimeOffset start, DateTimeOffset end) => HtmlReport.Window(start, end);

    private static string Number(double? value) => HtmlReport.Number(value);

    private static string E(string text) => HtmlReport.E(text);
}

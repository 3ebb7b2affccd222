using System.Globalization;
using System.Net;
using System.Text;

namespace ModelAsData.Cli.Reports;

/// <summary>
/// What every <c>--html</c> report shares: one self-contained file (no script, no link: nothing to fetch at view time),
/// the same page style, and plots drawn by ScottPlot as inline SVG. The drift, performance and compare reports are
/// each a body written with these.
/// </summary>
internal static class HtmlReport
{
    /// <summary>The page's head and title heading, with the time it was generated and where its numbers are explained.</summary>
    public static StringBuilder Begin(string title, string docs, string css = "")
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(title)).Append("</title>\n<style>")
            .Append("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}")
            .Append("th{background:#f4f4f4}td.t{text-align:left}").Append(css)
            .Append("</style></head><body>\n");
        html.Append("<h1>").Append(E(title)).Append("</h1>\n<p>Generated ").Append(E(DateTimeOffset.UtcNow.ToString("u", CultureInfo.InvariantCulture)))
            .Append(". ").Append(E(docs)).Append("</p>\n");
        return html;
    }

    public static string End(StringBuilder html) => html.Append("</body></html>\n").ToString();

    /// <summary>The plot as an inline SVG element (without the XML declaration).</summary>
    public static string Svg(ScottPlot.Plot plot, int width, int height)
    {
        var svg = plot.GetSvgXml(width, height);
        return svg[svg.IndexOf("<svg", StringComparison.Ordinal)..];
    }

    public static string Window(DateTimeOffset start, DateTimeOffset end) =>
        string.Create(CultureInfo.InvariantCulture, $"{start.UtcDateTime:yyyy-MM-dd HH:mm} – {end.UtcDateTime:yyyy-MM-dd HH:mm}");

    public static string Number(double? value) => value is { } v ? v.ToString("0.####", CultureInfo.InvariantCulture) : "–";

    /// <summary>A p-value as people read it: four decimals, and below that "&lt; 0.0001" rather than a bare 0.</summary>
    public static string PValue(double? p) => p is < 0.0001 ? "< 0.0001" : Number(p);

    public static string E(string text) => WebUtility.HtmlEncode(text);
}

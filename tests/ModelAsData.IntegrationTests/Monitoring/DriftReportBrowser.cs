using System.Text.RegularExpressions;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// Opens a drift report in real headless Chromium (<see cref="ReportBrowser"/>) and counts the plots the browser laid
/// out: an SVG of real size with bars of the "current" colour that have a size.
/// </summary>
internal static partial class DriftReportBrowser
{
    private const string Check = """
        <script>
        const plots = [...document.querySelectorAll('section.column svg')];
        const rendered = plots.filter(svg => {
          const box = svg.getBoundingClientRect();
          const bars = [...svg.querySelectorAll('rect')].filter(r => (r.getAttribute('fill') || '').toUpperCase() === '#D62728')
            .filter(r => { const b = r.getBBox(); return b.width > 0 && b.height > 0; });
          return box.width > 100 && box.height > 100 && bars.length > 0;
        });
        document.body.setAttribute('data-plots', plots.length + '/' + rendered.length);
        </script>
        """;

    /// <summary>How many of the report's plots rendered; fails when the report has not <paramref name="expected"/> plots or Chromium is missing.</summary>
    public static async Task<int> RenderedPlotsAsync(string report, int expected)
    {
        var dom = await ReportBrowser.CheckedDomAsync(report, Check);
        var match = Plots().Match(dom);
        Assert.True(match.Success, "Chromium gave no data-plots: the check script did not run.");
        Assert.Equal(expected, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        return int.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [GeneratedRegex("data-plots=\"(\\d+)/(\\d+)\"")]
    private static partial Regex Plots();
}

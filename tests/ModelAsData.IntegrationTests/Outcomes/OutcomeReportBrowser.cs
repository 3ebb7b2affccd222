using System.Text.RegularExpressions;
using ModelAsData.IntegrationTests.Monitoring;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// What a person sees of an outcome report in real headless Chromium (<see cref="ReportBrowser"/>): how many plots
/// there are and how many the browser drew with data in them (an SVG of real size whose plot area holds a marker of
/// a size), the legends of the plots, and the text of the first table.
/// </summary>
internal static partial class OutcomeReportBrowser
{
    private const string Check = """
        <script>
        const sections = [...document.querySelectorAll('section.plot')];
        const marks = s => {
          const inArea = new Set([...s.querySelectorAll('svg g[clip-path] ellipse')]);
          return [...inArea].filter(e => { const b = e.getBBox(); return b.width > 0 && b.height > 0; }).length;
        };
        const drawn = sections.filter(s => {
          const svg = s.querySelector('svg');
          if (!svg) return false;
          const box = svg.getBoundingClientRect();
          return box.width > 100 && box.height > 100 && marks(s) > 0;
        });
        const out = document.createElement('pre');
        out.id = 'seen';
        out.textContent = 'plots=' + sections.length + '/' + drawn.length + '\n'
          + 'drawn=' + drawn.map(s => s.dataset.metric).join(',') + '\n'
          + 'marks=' + sections.map(s => s.dataset.metric + ':' + marks(s)).join(',') + '\n'
          + 'legends=' + [...new Set(sections.flatMap(s => [...s.querySelectorAll('svg text')].map(t => t.textContent.trim()).filter(t => t.startsWith('version '))))].sort().join(',') + '\n'
          + 'table=' + [...document.querySelector('table').rows].map(r => [...r.cells].map(c => c.innerText.trim()).join('|')).join(';;') + '\n';
        document.body.appendChild(out);
        </script>
        """;

    /// <param name="Marks">Per plot (its metric), the markers drawn in its clipped areas: one per point of every line, and the legend's one per line.</param>
    public sealed record Seen(int Plots, int Drawn, IReadOnlyList<string> DrawnMetrics, IReadOnlyDictionary<string, int> Marks, IReadOnlyList<string> Legends,
        IReadOnlyList<IReadOnlyList<string>> Table);

    public static async Task<Seen> OpenAsync(string report)
    {
        var dom = await ReportBrowser.CheckedDomAsync(report, Check);
        var seen = SeenBlock().Match(dom);
        Assert.True(seen.Success, "Chromium gave no #seen: the check script did not run.");
        var lines = System.Net.WebUtility.HtmlDecode(seen.Groups[1].Value).Split('\n').Where(l => l.Contains('=', StringComparison.Ordinal))
            .ToDictionary(l => l[..l.IndexOf('=', StringComparison.Ordinal)], l => l[(l.IndexOf('=', StringComparison.Ordinal) + 1)..]);
        var plots = lines["plots"].Split('/');
        return new Seen(int.Parse(plots[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(plots[1], System.Globalization.CultureInfo.InvariantCulture),
            lines["drawn"].Split(',', StringSplitOptions.RemoveEmptyEntries),
            lines["marks"].Split(',', StringSplitOptions.RemoveEmptyEntries).ToDictionary(m => m[..m.LastIndexOf(':')], m => int.Parse(m[(m.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture)),
            lines["legends"].Split(',', StringSplitOptions.RemoveEmptyEntries),
            lines["table"].Split(";;").Select(r => (IReadOnlyList<string>)r.Split('|')).ToList());
    }

    [GeneratedRegex("<pre id=\"seen\">(.*?)</pre>", RegexOptions.Singleline)]
    private static partial Regex SeenBlock();
}

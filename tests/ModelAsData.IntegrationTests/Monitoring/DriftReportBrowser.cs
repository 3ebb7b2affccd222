using System.Diagnostics;
using System.Text.RegularExpressions;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// Opens a drift report in real headless Chromium (Debian's <c>chromium</c>; test.sh installs it) and counts the plots
/// the browser laid out: an SVG of real size with bars of the "current" colour that have a size. The check runs in a
/// copy of the report with a script added (the report itself has none).
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
        var browser = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("Chromium is not installed: run ./test.sh (it installs Debian's chromium package) or apt-get install chromium.");
        var copy = Path.ChangeExtension(report, ".check.html");
        var profile = Directory.CreateTempSubdirectory("mad-chromium-");
        try
        {
            var html = await File.ReadAllTextAsync(report);
            await File.WriteAllTextAsync(copy, html.Replace("</body>", Check + "</body>", StringComparison.Ordinal));
            var start = new ProcessStartInfo(browser)
            {
                ArgumentList = { "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", $"--user-data-dir={profile.FullName}", "--window-size=1400,1000", "--dump-dom", new Uri(copy).AbsoluteUri },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start)!;
            var dom = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(timeout.Token);
            var match = Plots().Match(await dom);
            Assert.True(match.Success, $"Chromium (exit {process.ExitCode}) gave no data-plots: {(await errors)[..Math.Min(2000, (await errors).Length)]}");
            Assert.Equal(expected, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            return int.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        finally
        {
            File.Delete(copy);
            profile.Delete(recursive: true);
        }
    }

    [GeneratedRegex("data-plots=\"(\\d+)/(\\d+)\"")]
    private static partial Regex Plots();
}

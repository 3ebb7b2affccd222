using System.Diagnostics;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// Opens an HTML report in real headless Chromium (Debian's <c>chromium</c>; test.sh installs it), in a copy with a
/// check script added before &lt;/body&gt; (the reports themselves have none), and returns the DOM as laid out and
/// checked: what the script wrote into it is what a person would have seen.
/// </summary>
internal static class ReportBrowser
{
    public static async Task<string> CheckedDomAsync(string report, string script)
    {
        var browser = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("Chromium is not installed: run ./test.sh (it installs Debian's chromium package) or apt-get install chromium.");
        var copy = Path.ChangeExtension(report, ".check.html");
        var profile = Directory.CreateTempSubdirectory("mad-chromium-");
        try
        {
            var html = await File.ReadAllTextAsync(report);
            await File.WriteAllTextAsync(copy, html.Replace("</body>", script + "</body>", StringComparison.Ordinal));
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
            var text = await dom;
            Assert.True(text.Length > 0, $"Chromium (exit {process.ExitCode}) gave no DOM: {(await errors)[..Math.Min(2000, (await errors).Length)]}");
            return text;
        }
        finally
        {
            File.Delete(copy);
            profile.Delete(recursive: true);
        }
    }
}

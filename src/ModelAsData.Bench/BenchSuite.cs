using Spectre.Console;

namespace ModelAsData.Bench;

/// <summary>What <c>mad bench</c> runs: the sections behind docs/BENCHMARKS.md, each with its reference measured in the same run.</summary>
public static class BenchSuite
{
    /// <summary>Each figure's reference and the ratio the project aims for.</summary>
    private static readonly (string Figure, string Reference, double Goal)[] s_ratios =
    [
        ("predict() in SQLite, 1 row per call", "raw ONNX Runtime, 1 row per call", 0.5),
        ("tables refresh", "bare read + write, no scoring", 0.6),
        ("tables refresh", "raw ONNX Runtime, {batch} rows per call", 0),
    ];

    /// <summary>The PostgreSQL figures: the refresh against the slower of raw scoring and bare movement, and against the service path.</summary>
    private static readonly (string Figure, string Reference, double Goal)[] s_postgresRatios =
    [
        (PostgresBench.Refresh, "slower of (raw ONNX Runtime, bare data movement)", 0.6),
        (PostgresBench.Refresh, PostgresBench.Bare, 0),
        (PostgresBench.Refresh, PostgresBench.Service, 5),
        // Issue 15: a 50 % canary costs at most 5 % of the plain refresh.
        (PostgresBench.CanaryRefresh, PostgresBench.Refresh, 0.95),
        // Issue 15: a 100 % shadow on top costs at most scoring the rows once more (half the plain refresh's speed).
        (PostgresBench.ShadowRefresh, PostgresBench.Refresh, 0.5),
    ];

    /// <summary>The sections <see cref="RunPostgresAsync"/> takes.</summary>
    public static readonly string[] Sections = ["all", "online", "stream", "batch", "monitoring", "drift", "sync", "outcomes", "export", "image"];

    /// <summary>The sections <see cref="RunEmbeddedAsync"/> takes.</summary>
    public static readonly string[] EmbeddedSections = ["all", "image"];

    /// <summary>Issue 14: an image model through a prediction table keeps at least 0.7× raw ONNX Runtime's batch scoring.</summary>
    private static readonly (string Figure, string Reference, double Goal)[] s_imageRatios =
        [.. ImageBench.Models.Select(m => (ImageBench.Refresh(m.Outputs), ImageBench.Raw(m.Outputs), 0.7))];

    /// <summary>Drift monitoring's cost: the refresh with every row counted against the same refresh without (goal: ≤ 3 % slower).</summary>
    private static readonly (string Figure, string Reference, double Goal)[] s_monitoringRatios =
    [
        (PostgresBench.MonitoringOn, PostgresBench.MonitoringOff, 0.97),
    ];

    /// <summary>Issue 17: exporting a training set keeps at least half the rate of a bare COPY of the same columns.</summary>
    private static readonly (string Figure, string Reference, double Goal)[] s_exportRatios =
    [
        (ExportBench.Csv, ExportBench.BareTable, 0.5),
        (ExportBench.Csv, ExportBench.BareJoin, 0),
        (ExportBench.Mixed, ExportBench.BareTable, 0),
        (ExportBench.Parquet, ExportBench.BareTable, 0),
    ];

    /// <summary>
    /// The PostgreSQL sections against <paramref name="db"/>. <paramref name="rows"/> and <paramref name="rounds"/>
    /// are what the user gave, or null for each section's own default.
    /// </summary>
    public static async Task RunPostgresAsync(IAnsiConsole console, string db, string section, int? rows, int? rounds, bool markdown, CancellationToken cancellationToken)
    {
        if (section is "all" or "online")
        {
            console.MarkupLine("[bold]Online (PostgreSQL)[/]: latency of one request at a time, beside SELECT 1 and raw ONNX Runtime.");
            await new RequestBench(db, Math.Min(rows ?? EmbeddedRows, 5_000), rounds ?? EmbeddedRounds, console).RunAsync(markdown, cancellationToken);
        }

        if (section is "all" or "stream")
        {
            console.MarkupLine("[bold]Streaming (PostgreSQL)[/]: commit → prediction latency, sustained rate with bounded lag, writer overhead of the watch triggers.");
            var stream = new StreamBench(db, rounds ?? EmbeddedRounds, Log(console));
            StreamReport.Print(console, await stream.RunAsync(cancellationToken), markdown);
        }

        if (section is "drift")
        {
            var driftRows = rows ?? 1_000_000;
            console.MarkupLineInterpolated($"[bold]Drift (PostgreSQL)[/]: mad.drift from the profile counts of {driftRows:N0} rows × 100 columns, against the same PSI by a full scan of the source.");
            await new DriftBench(db, driftRows, rounds ?? 3, console).RunAsync(markdown, cancellationToken);
            return;
        }

        if (section is "sync")
        {
            var syncRows = rows ?? 1_000_000;
            console.MarkupLineInterpolated($"[bold]Edge sync (PostgreSQL)[/]: mad sync push of {syncRows:N0} device predictions, against a bare COPY of the same rows.");
            await new SyncBench(db, syncRows, rounds ?? 3, console).RunAsync(cancellationToken);
            return;
        }

        if (section is "outcomes")
        {
            var outcomeRows = rows ?? 1_000_000;
            console.MarkupLineInterpolated($"[bold]Outcomes (PostgreSQL)[/]: mad.performance over {outcomeRows:N0} predictions with as many outcomes, against a plain join computing accuracy.");
            await new OutcomesBench(db, outcomeRows, rounds ?? 3, console).RunAsync(cancellationToken);
            return;
        }

        if (section is "export")
        {
            var exportRows = rows ?? 1_000_000;
            console.MarkupLineInterpolated($"[bold]Training-set export (PostgreSQL)[/]: {exportRows:N0} labelled rows to files, against bare COPYs of the same columns.");
            var export = new ExportBench(db, exportRows, rounds ?? 5, Log(console));
            MeasurementReport.Print(console, await export.RunAsync(cancellationToken), markdown, s_exportRatios);
            return;
        }

        if (section is "monitoring")
        {
            var monitoringRows = rows ?? 1_000_000;
            console.MarkupLineInterpolated($"[bold]Drift monitoring (PostgreSQL)[/]: a {monitoringRows:N0}-row refresh with every row counted into a baseline, against the same refresh without.");
            var bench = new PostgresBench(db, monitoringRows, rounds ?? 6, Log(console), monitoring: true);
            MeasurementReport.Print(console, await bench.RunAsync(cancellationToken), markdown, s_monitoringRatios);
            return;
        }

        if (section is not ("all" or "batch"))
        {
            return;
        }

        // Batch: a full refresh by one sidecar, beside raw scoring, bare data movement and a service path.
        var pgRows = rows ?? 1_000_000;
        var pgRounds = rounds ?? 3;
        console.MarkupLineInterpolated($"[bold]PostgreSQL[/]: {pgRows:N0} rows of {EmbeddedBench.Model}, {pgRounds} rounds, median rows/s.");
        var pg = new PostgresBench(db, pgRows, pgRounds, Log(console));
        MeasurementReport.Print(console, await pg.RunAsync(cancellationToken), markdown, s_postgresRatios);
    }

    /// <summary>Rows per measurement of the embedded bench (and the online section's cap) unless the user gives --rows.</summary>
    public const int EmbeddedRows = 200_000;

    /// <summary>Rounds of every section but the PostgreSQL batch unless the user gives --rounds.</summary>
    public const int EmbeddedRounds = 5;

    /// <summary>Images per measurement of the image section unless the user gives --rows (each is a 28×28 CNN pass).</summary>
    public const int ImageRows = 20_000;

    /// <summary>
    /// The embedded (SQLite) bench: <c>predict()</c> and a table refresh beside raw ONNX Runtime and bare read + write
    /// (section all), and an image model's refresh beside raw batch scoring (all and image). <paramref name="rows"/>
    /// is what the user gave, or null for each section's own default.
    /// </summary>
    public static async Task RunEmbeddedAsync(IAnsiConsole console, string section, int? rows, int rounds, bool markdown, CancellationToken cancellationToken)
    {
        if (section is "all")
        {
            var tabularRows = rows ?? EmbeddedRows;
            console.MarkupLineInterpolated($"[bold]Embedded (SQLite)[/]: {tabularRows:N0} rows of {EmbeddedBench.Model}, {rounds} rounds, median rows/s.");
            var bench = new EmbeddedBench(tabularRows, rounds, Log(console));
            MeasurementReport.Print(console, await bench.RunAsync(cancellationToken), markdown, s_ratios);
        }

        var images = rows ?? ImageRows;
        console.MarkupLineInterpolated($"[bold]Embedded (SQLite), images[/]: {images:N0} uint8 28×28 images through a small CNN, {rounds} rounds, median images/s.");
        var imageBench = new ImageBench(images, rounds, Log(console));
        MeasurementReport.Print(console, await imageBench.RunAsync(cancellationToken), markdown, s_imageRatios);
    }

    private static Action<string> Log(IAnsiConsole console) => line => console.MarkupLineInterpolated($"[grey]{line}[/]");
}

using ModelAsData.Bench;
using Spectre.Console.Testing;

namespace ModelAsData.Tests.Cli;

/// <summary>The stream bench's arithmetic and report, without a database (the bench itself needs one and a minute).</summary>
public sealed class StreamBenchTests
{
    [Fact]
    public void Percentiles_interpolate_as_percentile_cont()
    {
        var p = Percentiles.Of([4, 1, 3, 2]);

        Assert.Equal(2.5, p.P50, 9);
        Assert.Equal(3.97, p.P99, 9);
        Assert.Equal(4, p.Max);
    }

    [Fact]
    public void Percentiles_over_rounds_are_the_medians_of_each()
    {
        var median = Percentiles.Median([new(1, 10, 20), new(3, 30, 90), new(2, 20, 30)]);

        Assert.Equal(new Percentiles(2, 20, 30), median);
    }

    [Fact]
    public async Task Pacer_runs_every_slot_once_on_schedule_across_lanes()
    {
        var seen = new int[100];
        var lanes = Enumerable.Range(0, 3).Select(_ => (Func<long, Task>)(slot =>
        {
            Interlocked.Increment(ref seen[slot]);
            return Task.CompletedTask;
        })).ToList();

        var run = await Pacer.RunAsync(lanes, 200, TimeSpan.FromMilliseconds(500), TestContext.Current.CancellationToken);

        Assert.Equal(100, run.Planned);
        // No slot runs twice and every run is counted. On a loaded machine a timer may wake a lane late enough that
        // its last slots fall past the end, which the pacer then drops by design (the next test): so most slots,
        // not all, is what holds everywhere.
        Assert.All(seen, count => Assert.InRange(count, 0, 1));
        Assert.Equal(seen.Sum(), run.Done);
        Assert.InRange(run.Done, 50, 100);
        // The last slot is due at 495 ms: the run neither rushes ahead of the schedule nor is held up by it.
        Assert.InRange(run.Elapsed.TotalMilliseconds, 490, 2_000);
    }

    [Fact]
    public async Task Pacer_lane_behind_schedule_stops_at_the_end_of_the_period()
    {
        var lanes = new List<Func<long, Task>> { _ => Task.Delay(50, TestContext.Current.CancellationToken) };

        var run = await Pacer.RunAsync(lanes, 100, TimeSpan.FromMilliseconds(300), TestContext.Current.CancellationToken);

        Assert.Equal(30, run.Planned);
        Assert.InRange(run.Done, 1, 8);
        Assert.True(run.PerSecond < 50, $"{run.PerSecond} statements/s");
    }

    [Fact]
    public void Report_prints_the_goals_with_their_verdicts_and_a_markdown_table()
    {
        var results = new StreamResults("15.18", "1.2–2.3", 3, TimeSpan.FromSeconds(5),
            new StreamLatency(new(0.05, 0.1, 0.2), new(1, 3, 5), new(1.5, 12, 20)),
            [
                new RampStep(10_000, 10_010, 900, 0.1, TimeSpan.FromMilliseconds(20), true),
                new RampStep(25_000, 24_990, 30_000, 1.4, null, false),
            ],
            new Measurement(StreamWritersPhase.Unwatched, [10_000, 12_000, 11_000]),
            new Measurement(StreamWritersPhase.Watched, [9_000, 10_000, 9_500]),
            new Measurement(StreamWritersPhase.TriggersOnly, [9_500, 10_500, 10_000]));
        var console = new TestConsole { EmitAnsiSequences = false }.Width(400);

        StreamReport.Print(console, results, markdown: true);

        Assert.Contains("PostgreSQL 15.18, ", console.Output);
        Assert.Contains("load average 1.2–2.3; 3 rounds of 5 s", console.Output);
        Assert.Contains("- commit → visible p50 ≤ 2 ms: met (1.50 ms); p99 ≤ 10 ms: missed (12.00 ms)", console.Output);
        Assert.Contains("- sustained ≥ 50,000 rows/s with bounded lag: missed (10,010 rows/s)", console.Output);
        Assert.Contains("- writer overhead ≤ 15 % at 8 writers: met (13.6 %; the triggers alone, sidecar paused: 9.1 %)", console.Output);
        Assert.Contains("| watched, sidecar paused (the triggers alone) | 10,000 | 9,500 | 10,500 |", console.Output);
        Assert.Contains("| commit → prediction visible (server clock), 1,000 rows/s | 1.50 | 12.00 | 20.00 |", console.Output);
        Assert.Contains("| 25,000 | 24,990 | 30,000 | 1.40 | > 1 | no |", console.Output);
        Assert.Contains("| no watch triggers (reference) | 11,000 | 10,000 | 12,000 |", console.Output);
    }
}

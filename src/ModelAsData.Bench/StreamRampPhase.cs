using System.Globalization;
using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// The highest sustained insert rate at which the lag stays bounded: 8 writers of 100-row INSERT statements, paced at
/// increasing rates for one period each, with <c>mad.stream_lag</c> sampled every 100 ms on a connection of its own.
/// A step is bounded when, as the writers stop, the oldest waiting key is younger than 1 s and the outbox empties
/// within 1 s. Stops at the first unbounded step, or when the writers cannot reach the rate (the limit is then theirs).
/// </summary>
internal sealed class StreamRampPhase(StreamBenchTable table, TimeSpan period, Action<string> log)
{
    public const int Writers = 8;
    public const int RowsPerStatement = 100;

    private static readonly int[] s_targets = [10_000, 25_000, 40_000, 55_000, 70_000, 85_000, 100_000, 150_000];
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan s_sampleEvery = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan s_settleTimeout = TimeSpan.FromSeconds(60);

    public async Task<IReadOnlyList<RampStep>> RunAsync(CancellationToken cancellationToken)
    {
        var steps = new List<RampStep>();
        var writers = await StreamWriter.OpenAsync(table.DataSource, Writers, cancellationToken);
        await using var sampler = await table.DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            foreach (var target in s_targets)
            {
                log($"sustained: {target:N0} rows/s for {period.TotalSeconds:0} s ({Writers} writers, {RowsPerStatement}-row INSERTs)");
                var step = await StepAsync(writers, sampler, target, cancellationToken);
                steps.Add(step);
                log(string.Create(CultureInfo.InvariantCulture,
                    $"  reached {step.Achieved:N0} rows/s; at most {step.MaxWaiting:N0} keys waiting, the oldest {step.MaxOldestSeconds:0.00} s; " +
                    $"{(step.DrainedAfter is { } d ? $"drained {d.TotalSeconds:0.00} s after the writers stopped" : $"not drained {s_bound.TotalSeconds:0} s after the writers stopped")}"));
                if (!step.Bounded)
                {
                    log("  lag not bounded: the drain is the limit; stopping here");
                    break;
                }

                if (!step.WritersKeptUp)
                {
                    log($"  the writers reached less than {RampStep.Reached:P0} of the rate: they are the limit; stopping here");
                    break;
                }
            }

            // The writer phase should start on a quiet machine, not beside a drain still catching up.
            if (await table.WaitDrainedAsync(s_settleTimeout, cancellationToken) is null)
            {
                var lag = await table.LagAsync(sampler, cancellationToken);
                log($"  {lag.Waiting:N0} keys still waiting {s_settleTimeout.TotalSeconds:0} s after the last step; the writer phase's unwatch drops them");
            }

            return steps;
        }
        finally
        {
            foreach (var writer in writers)
            {
                await writer.DisposeAsync();
            }
        }
    }

    private async Task<RampStep> StepAsync(StreamWriter[] writers, NpgsqlConnection sampler, int target, CancellationToken cancellationToken)
    {
        var planned = (long)(target * period.TotalSeconds / RowsPerStatement);
        var first = table.ReserveIds(planned * RowsPerStatement);
        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sampling = SampleAsync(sampler, stopSampling.Token, cancellationToken);
        PacedRun run;
        try
        {
            run = await Pacer.RunAsync(writers.Select(writer => (Func<long, Task>)(slot =>
                writer.InsertManyAsync(first + (slot * RowsPerStatement), RowsPerStatement, cancellationToken))).ToList(),
                (double)target / RowsPerStatement, period, cancellationToken);
        }
        finally
        {
            await stopSampling.CancelAsync();
        }

        var seen = await sampling;
        var end = await table.LagAsync(sampler, cancellationToken);
        var drained = await table.WaitDrainedAsync(s_bound, cancellationToken);
        var bounded = end.OldestSeconds < s_bound.TotalSeconds && drained is not null;
        return new RampStep(target, run.Done * RowsPerStatement / run.Elapsed.TotalSeconds, Math.Max(seen.Waiting, end.Waiting),
            Math.Max(seen.OldestSeconds, end.OldestSeconds), drained, bounded);
    }

    /// <summary>
    /// The worst lag sampled until <paramref name="stop"/>. Stopping only ends the wait between samples: cancelling a
    /// query in flight would cost the sampler connection its state.
    /// </summary>
    private async Task<Lag> SampleAsync(NpgsqlConnection sampler, CancellationToken stop, CancellationToken cancellationToken)
    {
        var worst = new Lag(0, 0);
        using var timer = new PeriodicTimer(s_sampleEvery);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                var lag = await table.LagAsync(sampler, cancellationToken);
                worst = new Lag(Math.Max(worst.Waiting, lag.Waiting), Math.Max(worst.OldestSeconds, lag.OldestSeconds));
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // The writers stopped.
        }

        return worst;
    }
}

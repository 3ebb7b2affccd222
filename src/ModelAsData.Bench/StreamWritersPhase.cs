using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// What the watch triggers cost writers: 8 connections of one-row INSERT transactions as fast as they go for one
/// period, on the table unwatched (the reference) and watched with the sidecar draining, alternating within each
/// round so drift on a shared machine falls on both alike.
/// </summary>
internal sealed class StreamWritersPhase(StreamBenchTable table, int rounds, TimeSpan period, Action<string> log)
{
    public const int Writers = 8;
    public const string Unwatched = "no watch triggers (reference)";
    public const string Watched = "watched, sidecar draining";
    public const string TriggersOnly = "watched, sidecar paused (the triggers alone)";

    private static readonly TimeSpan s_drainTimeout = TimeSpan.FromSeconds(60);

    public async Task<(Measurement Unwatched, Measurement Watched, Measurement? TriggersOnly)> RunAsync(CancellationToken cancellationToken)
    {
        var unwatched = new List<double>();
        var watched = new List<double>();
        var triggersOnly = new List<double>();
        var writers = await StreamWriter.OpenAsync(table.DataSource, Writers, cancellationToken);
        try
        {
            await table.UnwatchAsync(cancellationToken);
            log($"writers: warm-up, 1 s of {Writers} writers (not counted)");
            await BurstAsync(writers, TimeSpan.FromSeconds(1), cancellationToken);
            for (var round = 1; round <= rounds; round++)
            {
                log($"writers: round {round}/{rounds}, {Writers} writers of one-row INSERTs for {period.TotalSeconds:0} s, unwatched then watched");
                await table.UnwatchAsync(cancellationToken);
                unwatched.Add(await BurstAsync(writers, period, cancellationToken));
                await table.WatchAsync(cancellationToken);
                watched.Add(await BurstAsync(writers, period, cancellationToken));
                if (SidecarProcess.CanPause)
                {
                    triggersOnly.Add(await TriggersOnlyAsync(writers, cancellationToken));
                }

                log(string.Create(CultureInfo.InvariantCulture, $"  unwatched {unwatched[^1]:N0} rows/s, watched {watched[^1]:N0} rows/s")
                    + (triggersOnly.Count > 0 ? string.Create(CultureInfo.InvariantCulture, $", triggers alone {triggersOnly[^1]:N0} rows/s") : ""));

                // The next unwatched burst should not share the CPU with a drain still catching up.
                if (await table.WaitDrainedAsync(s_drainTimeout, cancellationToken) is null)
                {
                    var lag = await table.LagAsync(null, cancellationToken);
                    log($"  {lag.Waiting:N0} keys still waiting {s_drainTimeout.TotalSeconds:0} s after the writers stopped; unwatch drops them");
                }
            }

            await table.UnwatchAsync(cancellationToken);
            return (new Measurement(Unwatched, unwatched), new Measurement(Watched, watched),
                triggersOnly.Count > 0 ? new Measurement(TriggersOnly, triggersOnly) : null);
        }
        finally
        {
            foreach (var writer in writers)
            {
                await writer.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// The writers with the sidecar stopped (SIGSTOP) and NOTIFY off (<c>mad.stream_set_notify</c>), as under load: what the
    /// capture itself costs them, without the drain's share of the cores. The keys wait in the outbox meanwhile.
    /// </summary>
    private async Task<double> TriggersOnlyAsync(StreamWriter[] writers, CancellationToken cancellationToken)
    {
        await using var session = await table.DataSource.OpenConnectionAsync(cancellationToken);
        table.Sidecar.Pause();
        try
        {
            await using (var stop = new NpgsqlCommand(StreamBenchSql.StopNotifying, session))
            {
                await stop.ExecuteNonQueryAsync(cancellationToken);
            }

            return await BurstAsync(writers, period, cancellationToken);
        }
        finally
        {
            table.Sidecar.Resume();
            await using var release = new NpgsqlCommand(StreamBenchSql.ReleaseNotifying, session);
            await release.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>Every writer inserts one row per transaction until the period ends; returns rows/s over all of them.</summary>
    private async Task<double> BurstAsync(StreamWriter[] writers, TimeSpan duration, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var counts = await Task.WhenAll(writers.Select(async writer =>
        {
            long count = 0;
            while (Stopwatch.GetElapsedTime(started) < duration)
            {
                await writer.InsertOneAsync(table.ReserveIds(1), cancellationToken);
                count++;
            }

            return count;
        }));
        return counts.Sum() / Stopwatch.GetElapsedTime(started).TotalSeconds;
    }
}

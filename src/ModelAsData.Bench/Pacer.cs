using System.Diagnostics;

namespace ModelAsData.Bench;

/// <summary>
/// Runs statements at a steady rate: statement i is due at start + i / rate on one Stopwatch schedule, whatever the
/// earlier ones took, so a late statement is followed by its successors at once (catching up) instead of every wait
/// adding Task.Delay's millisecond granularity to the next. The slots are dealt round-robin over lanes (one connection
/// each), so one slow commit does not hold back the statements due after it.
/// </summary>
internal static class Pacer
{
    /// <summary>
    /// Runs <paramref name="lanes"/> (each given the slot number) at <paramref name="perSecond"/> slots/s for
    /// <paramref name="duration"/>; a lane behind schedule at the end stops rather than run over.
    /// </summary>
    public static async Task<PacedRun> RunAsync(IReadOnlyList<Func<long, Task>> lanes, double perSecond, TimeSpan duration, CancellationToken cancellationToken)
    {
        var slots = (long)(perSecond * duration.TotalSeconds);
        var started = Stopwatch.GetTimestamp();
        var done = await Task.WhenAll(lanes.Select(async (lane, index) =>
        {
            long count = 0;
            for (long slot = index; slot < slots; slot += lanes.Count)
            {
                var wait = TimeSpan.FromSeconds(slot / perSecond) - Stopwatch.GetElapsedTime(started);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }
                else if (Stopwatch.GetElapsedTime(started) >= duration)
                {
                    break;
                }

                await lane(slot);
                count++;
            }

            return count;
        }));
        return new PacedRun(slots, done.Sum(), Stopwatch.GetElapsedTime(started));
    }
}

/// <summary>What a paced run did: slots planned, statements run, and the time they took (at least the duration asked).</summary>
internal sealed record PacedRun(long Planned, long Done, TimeSpan Elapsed)
{
    public double PerSecond => Done / Elapsed.TotalSeconds;
}

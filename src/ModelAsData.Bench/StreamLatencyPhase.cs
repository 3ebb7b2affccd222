using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// Commit → prediction visible at a steady 1,000 one-row INSERT transactions a second, on the server's clock (the
/// probe triggers of <see cref="StreamBenchSql.InstallProbes"/>), beside the writer's own INSERT + COMMIT round trip
/// and a bare <c>SELECT 1</c> round trip. Medians over rounds of each round's p50 and p99.
/// </summary>
internal sealed class StreamLatencyPhase(StreamBenchTable table, int rounds, TimeSpan period, Action<string> log)
{
    public const int RowsPerSecond = 1_000;

    // Four connections take turns, so a commit slower than the 1 ms between rows does not delay the next row.
    private const int Lanes = 4;
    private static readonly TimeSpan s_visibleTimeout = TimeSpan.FromSeconds(30);

    public async Task<StreamLatency> RunAsync(CancellationToken cancellationToken)
    {
        var selectOne = await SelectOneAsync(cancellationToken);
        await table.ExecuteAsync(StreamBenchSql.InstallProbes, cancellationToken);
        var writers = await StreamWriter.OpenAsync(table.DataSource, Lanes, cancellationToken);
        try
        {
            // The sidecar and the writers' sessions warm up (plans, JIT, model) before anything counts.
            log($"latency: warm-up, 1 s at {RowsPerSecond:N0} rows/s (not counted)");
            await RoundAsync(writers, "the warm-up", TimeSpan.FromSeconds(1), cancellationToken);
            var visible = new List<Percentiles>();
            var writes = new List<Percentiles>();
            for (var round = 1; round <= rounds; round++)
            {
                log($"latency: round {round}/{rounds}, {period.TotalSeconds:0} s at {RowsPerSecond:N0} one-row INSERTs/s");
                var (v, w, rate) = await RoundAsync(writers, $"latency round {round}", period, cancellationToken);
                visible.Add(v);
                writes.Add(w);
                log(string.Create(CultureInfo.InvariantCulture,
                    $"  commit → visible p50 {v.P50:0.00} ms, p99 {v.P99:0.00} ms, max {v.Max:0.00} ms; writer round trip p50 {w.P50:0.00} ms; {rate:N0} rows/s"));
            }

            await table.ExecuteAsync(StreamBenchSql.DropProbes, cancellationToken);
            return new StreamLatency(selectOne, Percentiles.Median(writes), Percentiles.Median(visible));
        }
        finally
        {
            foreach (var writer in writers)
            {
                await writer.DisposeAsync();
            }
        }
    }

    private async Task<(Percentiles Visible, Percentiles Write, double Rate)> RoundAsync(StreamWriter[] writers, string what, TimeSpan duration, CancellationToken cancellationToken)
    {
        var planned = (long)(RowsPerSecond * duration.TotalSeconds);
        var first = table.ReserveIds(planned);
        var roundTrips = new double[planned];
        Array.Fill(roundTrips, double.NaN);
        var run = await Pacer.RunAsync(writers.Select(writer => (Func<long, Task>)(async slot =>
        {
            var started = Stopwatch.GetTimestamp();
            await writer.InsertOneAsync(first + slot, cancellationToken);
            roundTrips[slot] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        })).ToList(), RowsPerSecond, duration, cancellationToken);

        var last = first + planned - 1;
        await table.WaitForCountAsync(StreamBenchSql.Visible, first, last, run.Done, what, s_visibleTimeout, cancellationToken);
        await using var command = table.DataSource.CreateCommand(StreamBenchSql.Latency);
        command.Parameters.Add(new() { Value = first });
        command.Parameters.Add(new() { Value = last });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var visible = new Percentiles(reader.GetDouble(0), reader.GetDouble(1), reader.GetDouble(2));
        return (visible, Percentiles.Of(roundTrips.Where(t => !double.IsNaN(t))), run.PerSecond);
    }

    /// <summary>The floor of any latency here: one prepared round trip to the server, 2,000 times.</summary>
    private async Task<Percentiles> SelectOneAsync(CancellationToken cancellationToken)
    {
        log("latency: SELECT 1 round trips (reference)");
        await using var connection = await table.DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(StreamBenchSql.SelectOne, connection);
        await command.PrepareAsync(cancellationToken);
        var times = new double[2_000];
        for (var i = -200; i < times.Length; i++)
        {
            var started = Stopwatch.GetTimestamp();
            await command.ExecuteScalarAsync(cancellationToken);
            if (i >= 0)
            {
                times[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
        }

        return Percentiles.Of(times);
    }
}

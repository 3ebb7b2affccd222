using System.Diagnostics;
using System.Globalization;
using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// The stream bench's watched table and the sidecar draining it, with what its phases share: fresh ids, watch and
/// unwatch, the lag, and waits that fail with the lag and the sidecar's state instead of hanging. Ids are handed out
/// thread-safely; the rest runs on the caller's connections or the data source's pool.
/// </summary>
internal sealed class StreamBenchTable(NpgsqlDataSource dataSource, SidecarProcess sidecar)
{
    private long _lastId;

    public NpgsqlDataSource DataSource => dataSource;

    public SidecarProcess Sidecar => sidecar;

    /// <summary>Reserves <paramref name="count"/> ids never used before in this run; returns the first.</summary>
    public long ReserveIds(long count) => Interlocked.Add(ref _lastId, count) - count + 1;

    public async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        // Unwatch deletes the keys still waiting, maybe many after a step the drain could not follow: more than the default 30 s.
        await using var command = dataSource.CreateCommand(sql);
        command.CommandTimeout = 300;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public Task WatchAsync(CancellationToken cancellationToken) => ExecuteAsync(StreamBenchSql.Watch, cancellationToken);

    public Task UnwatchAsync(CancellationToken cancellationToken) => ExecuteAsync(StreamBenchSql.Unwatch, cancellationToken);

    /// <summary><c>mad.stream_lag</c>: keys waiting and the oldest one's age, on <paramref name="connection"/> or a pooled one.</summary>
    public async Task<Lag> LagAsync(NpgsqlConnection? connection, CancellationToken cancellationToken)
    {
        await using var command = connection is null ? dataSource.CreateCommand(StreamBenchSql.Lag) : new NpgsqlCommand(StreamBenchSql.Lag, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new Lag(reader.GetInt64(0), reader.GetDouble(1));
    }

    /// <summary>Waits until no key waits; returns how long that took, or null if keys still wait after <paramref name="timeout"/>.</summary>
    public async Task<TimeSpan?> WaitDrainedAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        while ((await LagAsync(null, cancellationToken)).Waiting > 0)
        {
            if (Stopwatch.GetElapsedTime(started) > timeout)
            {
                return null;
            }

            sidecar.ThrowIfExited();
            await Task.Delay(10, cancellationToken);
        }

        return Stopwatch.GetElapsedTime(started);
    }

    /// <summary>
    /// Waits until <paramref name="count"/> scalar (a count of ids in [<paramref name="firstId"/>, <paramref name="lastId"/>])
    /// reaches <paramref name="expected"/>; after <paramref name="timeout"/> fails with what it saw, the lag and the sidecar's state.
    /// </summary>
    public async Task WaitForCountAsync(string count, long firstId, long lastId, long expected, string what, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            await using (var command = dataSource.CreateCommand(count))
            {
                command.Parameters.Add(new() { Value = firstId });
                command.Parameters.Add(new() { Value = lastId });
                var seen = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
                if (seen >= expected)
                {
                    return;
                }

                if (Stopwatch.GetElapsedTime(started) > timeout)
                {
                    var lag = await LagAsync(null, cancellationToken);
                    throw new ModelAsDataException(ErrorCode.Timeout, string.Create(CultureInfo.InvariantCulture,
                        $"After {timeout.TotalSeconds:0} s, {seen:N0} of the {expected:N0} rows of {what} had a prediction in mad_out.{StreamBenchSql.Table}; " +
                        $"mad.stream_lag says {lag.Waiting:N0} keys wait, the oldest for {lag.OldestSeconds:0.0} s. Is the sidecar draining? {sidecar.Describe()}"));
                }
            }

            sidecar.ThrowIfExited();
            await Task.Delay(10, cancellationToken);
        }
    }

    /// <summary>Fails if any prediction carries an error: the bench would be timing the error path, not scoring.</summary>
    public async Task ThrowIfFailedAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(StreamBenchSql.Failed);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        if (reader.GetInt64(0) > 0)
        {
            throw new ModelAsDataException(ErrorCode.Conflict, string.Create(CultureInfo.InvariantCulture,
                $"{reader.GetInt64(0):N0} predictions in mad_out.{StreamBenchSql.Table} have an error, e.g.: {reader.GetString(1)}"));
        }
    }
}

/// <summary>A sample of <c>mad.stream_lag</c>.</summary>
internal readonly record struct Lag(long Waiting, double OldestSeconds);

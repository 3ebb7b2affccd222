using System.Diagnostics;
using ModelAsData.Postgres.Streaming;

namespace ModelAsData.Sidecar.Streaming;

/// <summary>
/// Every <see cref="ReportInterval"/>: each watched table's rows/s and error into <c>mad.stream_stats</c> (what
/// <c>mad tables status</c> shows), and its lag into the metrics.
/// </summary>
internal sealed class StreamStats(StreamDrain drain, StreamCatchUp catchUp, StreamTableStates states, StreamMetrics metrics, string sidecarId)
{
    private static readonly TimeSpan ReportInterval = TimeSpan.FromSeconds(2);

    private long _reportedAt = Stopwatch.GetTimestamp();

    public async Task ReportIfDueAsync(CancellationToken cancellationToken)
    {
        var elapsed = Stopwatch.GetElapsedTime(_reportedAt);
        if (elapsed < ReportInterval)
        {
            return;
        }

        _reportedAt = Stopwatch.GetTimestamp();
        foreach (var table in await drain.WatchedTablesAsync(cancellationToken))
        {
            var state = states.Of(table);
            state.Rows += catchUp.TakeRows(table);
            var rate = (state.Rows - state.ReportedRows) / elapsed.TotalSeconds;
            state.ReportedRows = state.Rows;
            metrics.RowsPerSecond.WithLabels(table).Set(rate);
            var (waiting, oldest) = await drain.LagAsync(table, cancellationToken);
            metrics.Waiting.WithLabels(table).Set(waiting);
            metrics.OldestAge.WithLabels(table).Set(oldest);
            if (rate > 0 || state.ReportedRate > 0 || state.Error != state.ReportedError)
            {
                await drain.ReportAsync(sidecarId, table, state.Rows, rate, state.Error, cancellationToken);
                state.ReportedRate = rate;
                state.ReportedError = state.Error;
            }
        }
    }
}

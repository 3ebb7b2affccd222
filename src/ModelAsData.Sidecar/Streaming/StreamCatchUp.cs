using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Streaming;
using Npgsql;

namespace ModelAsData.Sidecar.Streaming;

/// <summary>
/// A second drain for a table whose writers are ahead: while the worker's batches come back full, this one drains the
/// same table on a connection of its own (the claim's SKIP LOCKED and key locks keep the two apart), so that one
/// batch's scoring overlaps another's reads and writes. It stops at its first batch less than half full; failures
/// are left to the worker, which reports and retries them.
/// </summary>
internal sealed partial class StreamCatchUp(NpgsqlDataSource dataSource, ModelCache cache, SidecarOptions options, StreamMetrics metrics, ILogger logger)
    : IAsyncDisposable
{
    private readonly StreamDrain _drain = new(dataSource, cache, options.BatchSize);
    private readonly WakeSignal _wake = new();
    private readonly ConcurrentDictionary<string, long> _rows = new();
    private volatile string? _table;

    /// <summary>Asks for help with <paramref name="table"/>; a no-op while it is already helping.</summary>
    public void Help(string table)
    {
        _table = table;
        _wake.Set();
    }

    public void Invalidate() => _drain.Invalidate();

    /// <summary>The rows it streamed for <paramref name="table"/> since the last call.</summary>
    public long TakeRows(string table) => _rows.TryRemove(table, out var rows) ? rows : 0;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            await _wake.WaitAsync(Timeout.InfiniteTimeSpan, cancellationToken);
            if (_table is not { } table)
            {
                continue;
            }

            try
            {
                StreamBatchResult result;
                do
                {
                    result = await _drain.DrainAsync(table, cancellationToken);
                    if (result.Keys > 0)
                    {
                        metrics.Count(table, result);
                        _rows.AddOrUpdate(table, result.Rows, (_, rows) => rows + result.Rows);
                    }
                }
                while (result.PlanChanged || (result.Keys > 0 && result.Keys >= Math.Max(1, _drain.BatchRows / 2)));
            }
            catch (Exception e) when (e is NpgsqlException or ModelAsDataException or InvalidDataException or IOException or InvalidOperationException
                                      && !cancellationToken.IsCancellationRequested)
            {
                LogFailed(logger, e, table);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _drain.DisposeAsync();
        _wake.Dispose();
    }

    [LoggerMessage(EventId = Protocol.LogEvents.StreamCatchUpFailed, Level = LogLevel.Debug, Message = "Catching up on {Table} failed; the worker's own drain goes on")]
    private static partial void LogFailed(ILogger logger, Exception exception, string table);
}

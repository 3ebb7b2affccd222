using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Streaming;
using Npgsql;

namespace ModelAsData.Sidecar.Streaming;

/// <summary>
/// One pass of the stream worker over every watched table, a batch per table in turns. A table whose batch fails is
/// paused with a growing pause (its keys stay waiting in the outbox) and its error reported for <c>mad tables status</c>; the others go on.
/// </summary>
internal sealed partial class StreamPass(StreamDrain drain, StreamCatchUp catchUp, StreamTableStates states, StreamMetrics metrics, string sidecarId, ILogger logger)
{
    /// <summary>
    /// Drains every watched table, a batch per table in turns, until each batch comes back less than half full (the
    /// writers are not ahead); returns the keys drained.
    /// </summary>
    public async Task<int> DrainAllAsync(CancellationToken cancellationToken)
    {
        var pending = (await drain.WatchedTablesAsync(cancellationToken)).Where(t => states.Of(t).MayRetry).ToList();
        var keys = 0;
        while (pending.Count > 0)
        {
            foreach (var table in pending.ToArray())
            {
                var drained = await DrainBatchAsync(table, cancellationToken);
                keys += drained ?? 0;
                if (drained is null || drained < drain.BatchRows / 2)
                {
                    pending.Remove(table);
                }
                else
                {
                    catchUp.Help(table); // the writers are ahead: a second drain overlaps with this one
                }
            }
        }

        return keys;
    }

    /// <summary>One batch of one table; returns the keys it drained, or null when none waited or it failed.</summary>
    private async Task<int?> DrainBatchAsync(string table, CancellationToken cancellationToken)
    {
        var state = states.Of(table);
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await drain.DrainAsync(table, cancellationToken);
            if (state.Error is not null)
            {
                LogRecovered(logger, table);
                state.Succeeded();
            }

            if (result.PlanChanged)
            {
                return drain.BatchRows; // the keys are back in the outbox: drain them again at once, with the new plan
            }

            if (result.Keys == 0)
            {
                return null;
            }

            metrics.BatchDuration.WithLabels(table).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
            metrics.Count(table, result);
            state.Rows += result.Rows;
            LogBatch(logger, table, result.Keys, result.Rows, result.Failed, result.Deleted);
            return result.Keys;
        }
        catch (PostgresException e) when (PostgresLockHolders.IsLockTimeout(e) && !cancellationToken.IsCancellationRequested)
        {
            // A key of this batch is locked by a session that is not letting go (any login can take the lock; the
            // keys are hashes anyone can compute): the batch rolled back, its keys stay waiting; say who holds it,
            // pause this table and keep streaming the others.
            var holders = await drain.KeyLockHoldersAsync(cancellationToken);
            metrics.Batches.WithLabels(table, "error").Inc();
            var delay = StreamBackoff.After(state.Failures + 1);
            state.Failed($"Gave up waiting for the advisory lock of a streamed key of {table} ({e.MessageText}); held by {holders}. Retried in {(long)delay.TotalMilliseconds} ms.", delay);
            LogKeyLockTimeout(logger, table, holders, (long)delay.TotalMilliseconds);
            await drain.ReportAsync(sidecarId, table, state.Rows, 0, state.Error, cancellationToken);
            state.ReportedError = state.Error;
            return null;
        }
        catch (Exception e) when (e is PostgresException { IsTransient: false } or ModelAsDataException or InvalidDataException && !cancellationToken.IsCancellationRequested)
        {
            // The table's batch cannot be done as it stands (a column dropped, a model that no longer fits, a privilege
            // revoked): its keys stay waiting; pause this table, say why, and keep streaming the others. (A terminated
            // session or a deadlock is transient: it goes to the session's retry, not to the table's error.)
            metrics.Batches.WithLabels(table, "error").Inc();
            state.Failed(e.Message, StreamBackoff.After(state.Failures + 1));
            LogTableFailed(logger, e, table, (long)StreamBackoff.After(state.Failures).TotalMilliseconds);
            await drain.ReportAsync(sidecarId, table, state.Rows, 0, state.Error, cancellationToken);
            state.ReportedError = state.Error;
            return null;
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.StreamBatch, Level = LogLevel.Debug, Message = "Streamed {Table}: {Keys} keys, {Rows} rows scored, {Failed} with an error, {Deleted} predictions deleted")]
    private static partial void LogBatch(ILogger logger, string table, int keys, long rows, long failed, long deleted);

    [LoggerMessage(EventId = Protocol.LogEvents.StreamTableFailed, Level = LogLevel.Error, Message = "Streaming {Table} failed; its keys stay waiting and it is retried in {DelayMs} ms")]
    private static partial void LogTableFailed(ILogger logger, Exception exception, string table, long delayMs);

    [LoggerMessage(EventId = Protocol.LogEvents.StreamKeyLockTimeout, Level = LogLevel.Warning,
        Message = "Streaming {Table} gave up waiting for the advisory lock of one of its keys (lock_timeout); held by {Holders}. Its keys stay waiting; retried in {DelayMs} ms, other tables go on")]
    private static partial void LogKeyLockTimeout(ILogger logger, string table, string holders, long delayMs);

    [LoggerMessage(EventId = Protocol.LogEvents.StreamTableRecovered, Level = LogLevel.Information, Message = "Streaming {Table} works again")]
    private static partial void LogRecovered(ILogger logger, string table);
}

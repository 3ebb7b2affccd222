using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Monitoring;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Drift monitoring of the online doors (issue 16): the prediction log writer hands each batch here, in the batch's
/// transaction, and its entries' features and answers are added to the profile counts of <c>online:&lt;model&gt;</c>
/// (<see cref="OnlineProfileCounts"/>). Behind a savepoint: counting that fails rolls back alone and is logged, and
/// the log's rows are written as ever. Used by the writer's one thread.
/// </summary>
internal sealed partial class PredictionLogDrift(ILogger logger)
{
    private readonly OnlineProfileCounts _counts = new();

    public async Task CountAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, List<PredictionLogEntry> batch, CancellationToken cancellationToken)
    {
        var rows = new List<OnlineRow>(batch.Count);
        foreach (var entry in batch)
        {
            if (entry.Features is { } features)
            {
                rows.Add(new OnlineRow(entry.PredictedAt, entry.Model, entry.Version, features, entry.Outputs));
            }
        }

        if (rows.Count == 0)
        {
            return;
        }

        await transaction.SaveAsync("mad_online_drift", cancellationToken);
        try
        {
            await _counts.AddAsync(connection, transaction, rows, cancellationToken);
            await transaction.ReleaseAsync("mad_online_drift", cancellationToken);
        }
        catch (Exception e) when (e is PostgresException or InvalidOperationException or FormatException or System.Text.Json.JsonException)
        {
            await transaction.RollbackAsync("mad_online_drift", cancellationToken);
            LogCountFailed(logger, e, rows.Count);
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.OnlineDriftCountFailed, Level = LogLevel.Warning, Message = "Counting {Count} online predictions for drift monitoring failed; the log is written without them")]
    private static partial void LogCountFailed(ILogger logger, Exception exception, int count);
}

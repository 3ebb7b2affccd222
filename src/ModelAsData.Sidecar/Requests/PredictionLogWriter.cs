using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Drains the <see cref="PredictionLog"/> into <c>mad.prediction_log</c> by binary COPY, a batch at a time (what has
/// arrived, up to 10,000 entries), off the hot path, and counts the batch's features and answers for drift monitoring
/// in the same transaction (<see cref="PredictionLogDrift"/>). On shutdown it writes what is left.
/// </summary>
internal sealed partial class PredictionLogWriter : BackgroundService
{
    private const int MaxBatch = 10_000;
    private readonly PredictionLog _log;
    private readonly NpgsqlDataSource _dataSource;
    private readonly SidecarOptions _options;
    private readonly RequestMetrics _metrics;
    private readonly ILogger _logger;
    private readonly PredictionLogDrift _drift;

    public PredictionLogWriter(PredictionLog log, NpgsqlDataSource dataSource, SidecarOptions options, RequestMetrics metrics, ILogger<PredictionLogWriter> logger)
    {
        _log = log;
        _dataSource = dataSource;
        _options = options;
        _metrics = metrics;
        _logger = logger;
        _drift = new PredictionLogDrift(logger);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<PredictionLogEntry>(MaxBatch);
        try
        {
            while (await _log.Reader.WaitToReadAsync(stoppingToken))
            {
                // Let a burst gather: one COPY per ~20 ms at most.
                await Task.Delay(TimeSpan.FromMilliseconds(20), stoppingToken);
                await WriteAvailableAsync(batch, CancellationToken.None);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: write what is left below.
        }

        using var last = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await WriteAvailableAsync(batch, last.Token);
    }

    private async Task WriteAvailableAsync(List<PredictionLogEntry> batch, CancellationToken cancellationToken)
    {
        while (true)
        {
            batch.Clear();
            while (batch.Count < MaxBatch && _log.Reader.TryRead(out var entry))
            {
                batch.Add(entry);
            }

            if (batch.Count == 0)
            {
                return;
            }

            try
            {
                await WriteAsync(batch, cancellationToken);
                _metrics.LogWritten.Inc(batch.Count);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or OperationCanceledException or InvalidOperationException)
            {
                _metrics.LogDropped.Inc(batch.Count);
                LogWriteFailed(_logger, e, batch.Count);
                return;
            }
        }
    }

    private async Task WriteAsync(List<PredictionLogEntry> batch, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await CopyAsync(connection, batch, cancellationToken);
        await _drift.CountAsync(connection, transaction, batch, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    private async Task CopyAsync(NpgsqlConnection connection, List<PredictionLogEntry> batch, CancellationToken cancellationToken)
    {
        await using var importer = await connection.BeginBinaryImportAsync(RequestSql.LogCopy, cancellationToken);
        foreach (var entry in batch)
        {
            await importer.StartRowAsync(cancellationToken);
            await importer.WriteAsync(entry.PredictedAt, NpgsqlDbType.TimestampTz, cancellationToken);
            await importer.WriteAsync(entry.Door, NpgsqlDbType.Text, cancellationToken);
            await importer.WriteAsync(entry.Model, NpgsqlDbType.Text, cancellationToken);
            await importer.WriteAsync(entry.Version, NpgsqlDbType.Integer, cancellationToken);
            await importer.WriteAsync(entry.InputsSha256, NpgsqlDbType.Text, cancellationToken);
            if (entry.Outputs is null)
            {
                await importer.WriteNullAsync(cancellationToken);
            }
            else
            {
                await importer.WriteAsync(entry.Outputs.ToJsonString(), NpgsqlDbType.Jsonb, cancellationToken);
            }

            await WriteNullableAsync(importer, entry.Error, NpgsqlDbType.Text, cancellationToken);
            if (entry.RequestId is { } id)
            {
                await importer.WriteAsync(id, NpgsqlDbType.Bigint, cancellationToken);
            }
            else
            {
                await importer.WriteNullAsync(cancellationToken);
            }

            await importer.WriteAsync(_options.SidecarId, NpgsqlDbType.Text, cancellationToken);
            await importer.WriteAsync(entry.Arm, NpgsqlDbType.Text, cancellationToken);
            await WriteNullableAsync(importer, entry.Key, NpgsqlDbType.Text, cancellationToken);
            // 051: the features of a keyed row, which the log's trigger keeps only while outcomes are bound.
            await WriteNullableAsync(importer, entry.Key is null ? null : entry.Features, NpgsqlDbType.Jsonb, cancellationToken);
        }

        await importer.CompleteAsync(cancellationToken);
    }

    private static async Task WriteNullableAsync(NpgsqlBinaryImporter importer, string? value, NpgsqlDbType type, CancellationToken cancellationToken)
    {
        if (value is null)
        {
            await importer.WriteNullAsync(cancellationToken);
        }
        else
        {
            await importer.WriteAsync(value, type, cancellationToken);
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.PredictionLogWriteFailed, Level = LogLevel.Warning, Message = "Writing {Count} prediction log entries failed; they are dropped")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, int count);
}

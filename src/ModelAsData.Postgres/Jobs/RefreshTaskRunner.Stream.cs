using System.Text.Json;
using Dapper;
using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres.Jobs;

/// <summary>Streaming: one batch of a watched table's outbox, read | score | write as a refresh task is.</summary>
public sealed partial class RefreshTaskRunner
{
    /// <summary>
    /// Drains up to <paramref name="batchRows"/> outbox rows of <paramref name="table"/> in one transaction: claims
    /// their keys (<c>mad.stream_claim</c>, which locks each key), reads the rows' current values, scores them, upserts
    /// the predictions and deletes those of rows that are gone (<c>mad.stream_apply</c>), then commits. A failure rolls
    /// everything back, so the keys are drained again. Returns the number of distinct keys handled (0: none waiting).
    /// </summary>
    public async Task<StreamBatchResult> StreamBatchAsync(string table, int batchRows, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        await using var writer = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await writer.BeginTransactionAsync(cancellationToken);
        var keys = await writer.ExecuteScalarAsync<string>(new CommandDefinition("SELECT mad.stream_claim(@table, @batchRows)::text",
            new { table, batchRows }, transaction, cancellationToken: cancellationToken)) ?? "[]";
        int keyCount;
        using (var parsed = JsonDocument.Parse(keys))
        {
            keyCount = parsed.RootElement.GetArrayLength();
            if (keyCount == 0)
            {
                await transaction.CommitAsync(cancellationToken);
                return default;
            }
        }

        var plan = TaskPlan.Parse(await writer.ExecuteScalarAsync<string>(new CommandDefinition("SELECT mad.stream_plan(@table, @keys::jsonb)::text",
            new { table, keys }, transaction, cancellationToken: cancellationToken)) ?? throw new InvalidDataException($"No plan for {table}."));
        byte[]? bytes = null;
        if (!_cache.Contains(plan.Sha256))
        {
            bytes = await writer.ExecuteScalarAsync<byte[]>(new CommandDefinition(TableSql.Bytes, new { model = plan.Model, version = plan.Version }, transaction, cancellationToken: cancellationToken));
        }

        var model = _cache.GetOrLoad(plan.Sha256, () => bytes ?? throw new InvalidOperationException($"Model {plan.Model}@{plan.Version} was not loaded."));
        if (model.Signature.Columns.Count != plan.Columns.Count)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"{plan.Model}@{plan.Version} decodes into {model.Signature.Columns.Count} columns; {table} has {plan.Columns.Count}.");
        }

        await writer.ExecuteAsync(new CommandDefinition($"CREATE TEMP TABLE mad_stream_rows ({plan.BuildColumns}) ON COMMIT DROP",
            transaction: transaction, cancellationToken: cancellationToken));
        long rows, failed;

        // Read on a second connection, after the keys are locked: its statement sees the latest committed values.
        await using (var reader = await _dataSource.OpenConnectionAsync(cancellationToken))
        {
            (rows, failed) = await CopyThroughPipelineAsync(model, plan, plan.Version, reader, writer, cancellationToken);
        }

        var deleted = await writer.ExecuteScalarAsync<long>(new CommandDefinition("SELECT mad.stream_apply(@table, @keys::jsonb)",
            new { table, keys }, transaction, cancellationToken: cancellationToken));
        await transaction.CommitAsync(cancellationToken);
        return new StreamBatchResult(keyCount, rows, failed, deleted);
    }
}

/// <summary>What one streaming batch did: distinct keys drained (0: none waiting), rows scored (of which failed carry an error) and predictions deleted.</summary>
public readonly record struct StreamBatchResult(int Keys, long Rows, long Failed, long Deleted);

/// <summary>A watched table's live lag: keys waiting in <c>mad.outbox</c> and the age of the oldest in seconds.</summary>
public sealed class StreamLag
{
    public bool Watched { get; set; }

    public long Waiting { get; set; }

    public double? OldestSeconds { get; set; }
}

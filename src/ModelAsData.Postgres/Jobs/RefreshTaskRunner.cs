using System.Collections.Concurrent;
using System.Globalization;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// Runs one claimed refresh task: reads its key range by binary COPY, scores it in batches, writes the predictions by
/// binary COPY into the job's build table, and completes the task in the same transaction (fenced on the lease
/// token), so its rows commit exactly once. Reading, scoring and writing are three threads handing a few batches
/// round (read | score | write), so memory stays flat however large the range. A row whose features cannot be
/// converted is written with its error; the rest of its batch is scored. Thread-safe: each call has its own state.
/// Does not own the data source or the cache.
/// </summary>
public sealed partial class RefreshTaskRunner
{
    private const int BatchesInFlight = 3;

    private readonly NpgsqlDataSource _dataSource;
    private readonly ModelCache _cache;
    private readonly int? _batchSize;

    /// <param name="batchSize">Rows per ONNX Runtime call; null: the model's preferred size.</param>
    public RefreshTaskRunner(NpgsqlDataSource dataSource, ModelCache cache, int? batchSize = null)
    {
        _dataSource = dataSource;
        _cache = cache;
        _batchSize = batchSize;
    }

    /// <summary>
    /// Runs the task to completion and commits it; a lost lease throws a <see cref="PostgresException"/> with
    /// <see cref="Protocol.SqlStates.LeaseLost"/> after rolling the rows back. Cancelling rolls back too.
    /// </summary>
    public async Task<RefreshTaskResult> RunAsync(RefreshTask task, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        TaskPlan plan;
        byte[]? bytes = null;
        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
        {
            plan = TaskPlan.Parse(await connection.ExecuteScalarAsync<string>(new CommandDefinition(TableSql.Plan, new { task = task.TaskId }, cancellationToken: cancellationToken))
                ?? throw new InvalidDataException($"No plan for {task}."));
            if (!_cache.Contains(task.Sha256))
            {
                bytes = await connection.ExecuteScalarAsync<byte[]>(new CommandDefinition(TableSql.Bytes, new { model = task.Model, version = task.Version }, cancellationToken: cancellationToken));
            }
        }

        var model = _cache.GetOrLoad(task.Sha256, () => bytes ?? throw new InvalidOperationException($"Model {task.Model}@{task.Version} was not loaded."));
        if (model.Signature.Columns.Count != plan.Columns.Count)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"{task.Model}@{task.Version} decodes into {model.Signature.Columns.Count} columns; {task.Table} has {plan.Columns.Count}.");
        }

        await using var reader = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var writer = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await writer.BeginTransactionAsync(cancellationToken);
        var (rows, failed) = await CopyThroughPipelineAsync(model, plan, task.Version, reader, writer, cancellationToken);

        var state = await writer.ExecuteScalarAsync<string>(new CommandDefinition(TableSql.Complete,
            new { task = task.TaskId, token = task.LeaseToken, rows, failed }, transaction, commandTimeout: 0, cancellationToken: cancellationToken));
        await transaction.CommitAsync(cancellationToken);
        return new RefreshTaskResult(rows, failed, state ?? "running");
    }

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>
    /// Streams the plan's rows out of <paramref name="reader"/> by binary COPY, through the read | score | write
    /// pipeline, and by binary COPY into the plan's build table on <paramref name="writer"/> (in its transaction).
    /// </summary>
    private async Task<(long Rows, long Failed)> CopyThroughPipelineAsync(OnnxModel model, TaskPlan plan, int version,
        NpgsqlConnection reader, NpgsqlConnection writer, CancellationToken cancellationToken)
    {
        var keys = plan.KeyColumns.Select((name, i) => KeyColumn.For(name, plan.KeyTypes[i])).ToArray();
        var features = plan.FeatureColumns.Select((name, i) => FeatureColumn.For(name, plan.FeatureTypes[i])).ToArray();
        var columns = plan.KeyColumns.Select(Quote).Concat(plan.Columns.Select(c => Quote(c.Name))).Concat(["model_version", "scored_at", "error"]);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var pipeline = new Pipeline(model, _batchSize ?? model.PreferredBatchSize, keys, features, plan, version, stop);
        using var exporter = await reader.BeginBinaryExportAsync($"COPY ({plan.Query}) TO STDOUT (FORMAT BINARY)", cancellationToken);
        using var importer = await writer.BeginBinaryImportAsync($"COPY {plan.BuildTable} ({string.Join(", ", columns)}) FROM STDIN (FORMAT BINARY)", cancellationToken);
        var result = await pipeline.RunAsync(exporter, importer);
        await importer.CompleteAsync(cancellationToken);
        return result;
    }
}

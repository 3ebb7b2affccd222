using System.Collections.Concurrent;
using System.Globalization;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
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
    /// <see cref="Protocol.SqlStates.LeaseLost"/> after rolling the rows back. Cancelling rolls back too. The source is
    /// read as the binding's owner, in a read transaction of its own: its plan (and the model, if not cached) are
    /// fetched as the sidecar and the role switched in the same round trip; the switch ends with that transaction,
    /// and every protocol call goes over the writer, which never switches (except to carry grants over, see
    /// <see cref="CarryGrantsAsync"/>).
    /// </summary>
    public async Task<RefreshTaskResult> RunAsync(RefreshTask task, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        await using var reader = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var reading = await reader.BeginTransactionAsync(cancellationToken);
        var (plan, model) = await PlanAndReadAsOwnerAsync(reader, task, cancellationToken);
        await using var writer = await _dataSource.OpenConnectionAsync(cancellationToken);
        if (plan.Planning is { } planning)
        {
            plan = await PlanJobAsync(task, planning, reader, writer, cancellationToken);
        }

        if (model.Signature.Columns.Count != plan.Columns.Count)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"{task.Model}@{task.Version} decodes into {model.Signature.Columns.Count} columns; {task.Table} has {plan.Columns.Count}.");
        }

        var canary = await CanaryAsync(task, plan, writer, cancellationToken);
        var (shadow, shadowRows) = await ShadowAsync(task, plan, writer, cancellationToken);
        // Drift monitoring: rows are counted into the version's baseline bins as they pass, added with the rows.
        var counter = await Monitoring.PostgresProfileCounts.CounterAsync(writer, task.Model, task.Version, plan.FeatureColumns, plan.Columns, cancellationToken);
        if (canary is not null)
        {
            // A canary's rows count under the canary version, against its own baseline (or its first window).
            canary = canary with { Counter = await Monitoring.PostgresProfileCounts.CounterAsync(writer, task.Model, canary.Version, plan.FeatureColumns, plan.Columns, cancellationToken) };
        }

        await using var transaction = await writer.BeginTransactionAsync(cancellationToken);
        var (rows, failed) = await CopyThroughPipelineAsync(model, plan, task.Version, canary, counter, reader, writer, cancellationToken, shadow, shadowRows);
        if (shadowRows is not null)
        {
            await WriteShadowAsync(task, plan, shadow, shadowRows, writer, transaction, cancellationToken);
        }

        if (canary?.Agreement is { } agreement)
        {
            await RecordAgreementAsync(task, agreement, writer, transaction, cancellationToken);
        }

        if (counter is not null)
        {
            await Monitoring.PostgresProfileCounts.AddAsync(writer, transaction, task.Table, task.Version, DateTime.UtcNow, counter, cancellationToken);
        }

        if (canary?.Counter is { } canaryCounter)
        {
            await Monitoring.PostgresProfileCounts.AddAsync(writer, transaction, task.Table, canary.Version, DateTime.UtcNow, canaryCounter, cancellationToken);
        }

        // A read like the owner's own: what the source's code wrote (a view's function) stays, as it would for them.
        await reading.CommitAsync(cancellationToken);

        var state = await writer.ExecuteScalarAsync<string>(new CommandDefinition(TableSql.Complete,
            new { task = task.TaskId, token = task.LeaseToken, rows, failed }, transaction, commandTimeout: 0, cancellationToken: cancellationToken));
        if (state == "done")
        {
            await CarryGrantsAsync(writer, task.JobId, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return new RefreshTaskResult(rows, failed, state ?? "running");
    }

    /// <summary>
    /// One round trip on the reader (its BEGIN included): the task's plan, the model (loaded when the cache lacks it),
    /// then the switch to the owner's role for the rest of the transaction (<c>mad.read_role</c> refuses an owner the
    /// sidecar may not read as, with the reason).
    /// </summary>
    private async Task<(TaskPlan Plan, OnnxModel Model)> PlanAndReadAsOwnerAsync(NpgsqlConnection reader, RefreshTask task, CancellationToken cancellationToken)
    {
        // The model (read when the cache lacks it) is read as the sidecar, before the switch: a large one through a temporary file.
        var model = await Registry.PostgresVersionBytes.LoadAsync(reader, task.Model, task.Version, task.Sha256, _cache, cancellationToken);
        await using var batch = new NpgsqlBatch(reader) { BatchCommands = { new(TableSql.Plan) { Parameters = { new() { Value = task.TaskId } } } } };
        batch.BatchCommands.Add(new(TableSql.ReadAsOwner) { Parameters = { new() { Value = task.Table } } });
        await using var result = await batch.ExecuteReaderAsync(cancellationToken);
        await result.ReadAsync(cancellationToken);
        var plan = TaskPlan.Parse(result.IsDBNull(0) ? throw new InvalidDataException($"No plan for {task}.") : result.GetString(0));
        while (await result.NextResultAsync(cancellationToken))
        {
            // The role switch: its errors surface here.
        }

        return (plan, model);
    }

    /// <summary>
    /// Plans the task's job: counts and samples the source on the reader (as the owner), and records the split with
    /// <c>mad.plan_job</c> on the writer, in its own transaction, so other sidecars can take the other ranges at once.
    /// </summary>
    private static async Task<TaskPlan> PlanJobAsync(RefreshTask task, JobPlanning planning, NpgsqlConnection reader, NpgsqlConnection writer, CancellationToken cancellationToken)
    {
        long total;
        await using (var count = new NpgsqlCommand(planning.Count, reader))
        {
            total = Convert.ToInt64(await count.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
        }

        var bounds = new List<string?[]>();
        var tasks = planning.TasksFor(total);
        if (tasks > 1)
        {
            await using var sample = new NpgsqlCommand(planning.Sample, reader)
            {
                Parameters =
                {
                    new() { Value = JobPlanning.SamplePercent(tasks, total), NpgsqlDbType = NpgsqlDbType.Double },
                    new() { Value = (long)tasks, NpgsqlDbType = NpgsqlDbType.Bigint },
                },
            };
            await using var rows = await sample.ExecuteReaderAsync(cancellationToken);
            while (await rows.ReadAsync(cancellationToken))
            {
                bounds.Add(rows.GetFieldValue<string?[]>(0));
            }
        }

        await using var plan = new NpgsqlCommand(TableSql.PlanJob, writer)
        {
            Parameters =
            {
                new() { Value = task.TaskId },
                new() { Value = task.LeaseToken },
                new() { Value = total },
                new() { Value = System.Text.Json.JsonSerializer.Serialize(bounds), NpgsqlDbType = NpgsqlDbType.Text },
            },
        };
        return TaskPlan.Parse((string?)await plan.ExecuteScalarAsync(cancellationToken) ?? throw new InvalidDataException($"No plan for {task}."));
    }

    /// <summary>
    /// In the swap's transaction: makes the grants other roles (the owner) had made on the replaced table again, each
    /// as its grantor (<c>mad.carried_grants</c> builds the script, ending in RESET ROLE), so the owner's REVOKE keeps working.
    /// </summary>
    private static async Task CarryGrantsAsync(NpgsqlConnection writer, long job, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(TableSql.CarriedGrants, writer) { Parameters = { new() { Value = job } } };
        if (await command.ExecuteScalarAsync(cancellationToken) is string script)
        {
            await using var replay = new NpgsqlCommand(script, writer);
            await replay.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>
    /// The canary the task's job fixed when it started (docs/DEPLOYMENTS.md), with its model, or null when every row is
    /// the champion's. Read on the writer, which never switches role.
    /// </summary>
    private async Task<JobCanary?> CanaryAsync(RefreshTask task, TaskPlan plan, NpgsqlConnection writer, CancellationToken cancellationToken)
    {
        int version;
        double percent, agreementPercent;
        long seed;
        string sha256;
        await using (var command = new NpgsqlCommand(TableSql.JobCanary, writer) { Parameters = { new() { Value = task.JobId } } })
        await using (var row = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (!await row.ReadAsync(cancellationToken))
            {
                return null;
            }

            (version, percent, seed, sha256) = (row.GetInt32(0), row.GetDouble(1), row.GetInt64(2), row.GetString(3));
            agreementPercent = row.GetDouble(4);
        }

        var model = await Registry.PostgresVersionBytes.LoadAsync(writer, task.Model, version, sha256, _cache, cancellationToken);
        if (model.Signature.Columns.Count != plan.Columns.Count)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"The canary {task.Model}@{version} decodes into {model.Signature.Columns.Count} columns; {task.Table} has {plan.Columns.Count}: abort it with mad.abort_deployment.");
        }

        // 043_2: a sample of the canary's keys is scored by the champion too; only the sums are kept.
        return new JobCanary(model, version, seed, percent)
        {
            AgreementPercent = agreementPercent,
            Agreement = agreementPercent > 0 ? new CanaryAgreementSums(plan.Columns, asReal: true) : null,
        };
    }

    /// <summary>
    /// The shadow the task's job fixed when it started (020), with its model and the buffer its rows go to; (null,
    /// null) without a shadow. A shadow that cannot be loaded gives a buffer holding the error and no model: the served
    /// rows are scored as ever, and the error is recorded on the job.
    /// </summary>
    private async Task<(JobShadow? Shadow, ShadowRows? Rows)> ShadowAsync(RefreshTask task, TaskPlan plan, NpgsqlConnection writer, CancellationToken cancellationToken)
    {
        int version;
        double percent;
        long seed;
        string sha256;
        await using (var command = new NpgsqlCommand(TableSql.JobShadow, writer) { Parameters = { new() { Value = task.JobId } } })
        await using (var row = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (!await row.ReadAsync(cancellationToken))
            {
                return (null, null);
            }

            (version, percent, seed, sha256) = (row.GetInt32(0), row.GetDouble(1), row.GetInt64(2), row.GetString(3));
        }

        try
        {
            var model = await Registry.PostgresVersionBytes.LoadAsync(writer, task.Model, version, sha256, _cache, cancellationToken);
            if (model.Signature.Columns.Count != plan.Columns.Count)
            {
                return (null, new ShadowRows { Error = $"The shadow {task.Model}@{version} decodes into {model.Signature.Columns.Count} columns; {task.Table} has {plan.Columns.Count}." });
            }

            return (new JobShadow(model, version, seed, percent), new ShadowRows());
        }
        catch (Exception e) when (e is not OperationCanceledException && e is not NpgsqlException)
        {
            return (null, new ShadowRows { Error = $"The shadow {task.Model}@{version} failed to load: {e.Message}" });
        }
    }

    /// <summary>
    /// Copies the task's shadow rows into mad_shadow.&lt;table&gt; and records them (or the shadow's error) on the job, in
    /// the task's transaction behind a savepoint: a shadow that cannot be written rolls back alone, with its error.
    /// </summary>
    private static async Task WriteShadowAsync(RefreshTask task, TaskPlan plan, JobShadow? shadow, ShadowRows shadowRows,
        NpgsqlConnection writer, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        var keys = plan.KeyColumns.Select((name, i) => KeyColumn.For(name, plan.KeyTypes[i])).ToArray();
        long written = 0;
        if (shadow is not null && shadowRows.Error is null && shadowRows.Rows.Count > 0)
        {
            await transaction.SaveAsync("mad_shadow", cancellationToken);
            try
            {
                var columns = plan.KeyColumns.Select(Quote).Append("shadow_version").Concat(plan.Columns.Select(c => Quote(c.Name)))
                    .Concat(["served_version", "scored_at", "error", "job"]);
                var scoredAt = DateTime.UtcNow;
                await using (var importer = await writer.BeginBinaryImportAsync(
                    $"COPY mad_shadow.{Quote(task.Table)} ({string.Join(", ", columns)}) FROM STDIN (FORMAT BINARY)", cancellationToken))
                {
                    foreach (var (keyValues, served, outputs, error) in shadowRows.Rows)
                    {
                        await importer.StartRowAsync(cancellationToken);
                        for (var k = 0; k < keys.Length; k++)
                        {
                            await WriteValueAsync(importer, keyValues[k], keys[k].Type, cancellationToken);
                        }

                        await importer.WriteAsync(shadow.Version, NpgsqlDbType.Integer, cancellationToken);
                        for (var c = 0; c < outputs.Length; c++)
                        {
                            var type = plan.Columns[c].Type switch
                            {
                                ColumnType.Real => NpgsqlDbType.Real,
                                ColumnType.Integer => NpgsqlDbType.Bigint,
                                ColumnType.Text => NpgsqlDbType.Text,
                                ColumnType.Uint64 => NpgsqlDbType.Numeric,
                                _ => NpgsqlDbType.Bytea,
                            };
                            await WriteValueAsync(importer, outputs[c], type, cancellationToken);
                        }

                        await importer.WriteAsync(served, NpgsqlDbType.Integer, cancellationToken);
                        await importer.WriteAsync(scoredAt, NpgsqlDbType.TimestampTz, cancellationToken);
                        await WriteValueAsync(importer, error, NpgsqlDbType.Text, cancellationToken);
                        await importer.WriteAsync(task.JobId, NpgsqlDbType.Bigint, cancellationToken);
                    }

                    await importer.CompleteAsync(cancellationToken);
                }

                written = shadowRows.Rows.Count;
                await transaction.ReleaseAsync("mad_shadow", cancellationToken);
            }
            catch (PostgresException e)
            {
                await transaction.RollbackAsync("mad_shadow", cancellationToken);
                shadowRows.Error = $"The shadow's rows could not be written to mad_shadow.{Quote(task.Table)}: {e.MessageText}";
            }
        }

        await using var record = new NpgsqlCommand(TableSql.RecordShadow, writer, transaction)
        {
            Parameters =
            {
                new() { Value = task.TaskId },
                new() { Value = task.LeaseToken },
                new() { Value = written },
                new() { Value = (object?)shadowRows.Error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
            },
        };
        await record.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Adds the task's champion-vs-canary sums to its job (043_2), in the task's transaction, fenced on its lease.</summary>
    private static async Task RecordAgreementAsync(RefreshTask task, CanaryAgreementSums agreement, NpgsqlConnection writer, NpgsqlTransaction transaction,
        CancellationToken cancellationToken)
    {
        await using var record = new NpgsqlCommand(TableSql.RecordAgreement, writer, transaction)
        {
            Parameters =
            {
                new() { Value = task.TaskId },
                new() { Value = task.LeaseToken },
                new() { Value = agreement.RowsCompared },
                new() { Value = (object?)agreement.RowsEqual ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint },
                new() { Value = agreement.DifferencesJson(), NpgsqlDbType = NpgsqlDbType.Text },
            },
        };
        await record.ExecuteNonQueryAsync(cancellationToken);
    }

    private static Task WriteValueAsync(NpgsqlBinaryImporter importer, object? value, NpgsqlDbType type, CancellationToken cancellationToken) => value switch
    {
        null => importer.WriteNullAsync(cancellationToken),
        long l => importer.WriteAsync(l, type, cancellationToken),
        int i => importer.WriteAsync(i, type, cancellationToken),
        float f => importer.WriteAsync(f, type, cancellationToken),
        string s => importer.WriteAsync(s, type, cancellationToken),
        byte[] b => importer.WriteAsync(b, type, cancellationToken),
        _ => importer.WriteAsync(value, type, cancellationToken),
    };

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>
    /// Streams the plan's rows out of <paramref name="reader"/> by binary COPY, through the read | score | write
    /// pipeline, and by binary COPY into the plan's build table on <paramref name="writer"/> (in its transaction).
    /// </summary>
    private async Task<(long Rows, long Failed)> CopyThroughPipelineAsync(OnnxModel model, TaskPlan plan, int version, JobCanary? canary,
        Core.Monitoring.ProfileCounter? counter,
        NpgsqlConnection reader, NpgsqlConnection writer, CancellationToken cancellationToken, JobShadow? shadow = null, ShadowRows? shadowRows = null)
    {
        var keys = plan.KeyColumns.Select((name, i) => KeyColumn.For(name, plan.KeyTypes[i])).ToArray();
        var features = plan.FeatureColumns.Select((name, i) => FeatureColumn.For(name, plan.FeatureTypes[i])).ToArray();
        var columns = plan.KeyColumns.Select(Quote).Concat(plan.Columns.Select(c => Quote(c.Name))).Concat(["model_version", "scored_at", "error", "arm"]);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var pipeline = new Pipeline(model, _batchSize ?? model.PreferredBatchSize, keys, features, plan, version, canary, stop, counter, shadow, shadowRows);
        using var exporter = await reader.BeginBinaryExportAsync($"COPY ({plan.Query}) TO STDOUT (FORMAT BINARY)", cancellationToken);
        using var importer = await writer.BeginBinaryImportAsync($"COPY {plan.BuildTable} ({string.Join(", ", columns)}) FROM STDIN (FORMAT BINARY)", cancellationToken);
        var result = await pipeline.RunAsync(exporter, importer);
        await importer.CompleteAsync(cancellationToken);
        return result;
    }
}

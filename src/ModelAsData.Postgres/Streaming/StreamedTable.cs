using System.Diagnostics;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres.Jobs;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Streaming;

/// <summary>
/// One watched table on one drain connection: its plan, model, scorer and prepared statements, so that a batch is
/// two round trips — BEGIN + claim + read (as the binding's owner), then upsert (+ delete) + COMMIT. Built again when the plan may have changed
/// (an alias moved, a refresh swapped the table, or <see cref="MaxAge"/> passed).
/// </summary>
internal sealed class StreamedTable : IDisposable
{
    /// <summary>How long a plan is trusted without a notification that it changed: the safety net for a missed one.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);

    private readonly StreamPlan _plan;
    private readonly ModelScorer _scorer;
    private readonly FeatureSlots _slots;
    private readonly StreamRows _rows;
    private readonly NpgsqlBatch _claimAndRead;
    private readonly NpgsqlBatch _write;
    private readonly NpgsqlBatch _writeAndDelete;
    private readonly object[] _values;
    // 019: the canary's scorer when the plan was made under one; each batch's bucket flags.
    private readonly ModelScorer? _canaryScorer;
    private readonly FeatureSlots? _canarySlots;
    private readonly bool[] _canary;
    private int[] _versions = [];
    // 025: the shadow when the plan was made under one; its rows are written after the served ones, behind a savepoint.
    private StreamShadow? _shadow;
    private string[] _arms = [];
    private readonly long _builtAt = Stopwatch.GetTimestamp();
    private Core.Monitoring.ProfileCounter? _counter;
    private Core.Monitoring.ProfileCounter? _canaryCounter;

    private StreamedTable(NpgsqlConnection connection, string name, StreamPlan plan, OnnxModel model, OnnxModel? canary, StreamShadow? shadow, int batchRows,
        int idleTimeoutMs, int scoreBatchSize)
    {
        _shadow = shadow;
        Name = name;
        _plan = plan;
        _scorer = model.CreateScorer(scoreBatchSize);
        _slots = new FeatureSlots(model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
        _canaryScorer = canary?.CreateScorer(scoreBatchSize);
        _canarySlots = canary is null ? null : new FeatureSlots(canary, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
        _canary = new bool[batchRows];
        _rows = new StreamRows(plan, batchRows);
        _values = new object[plan.KeyColumns.Length + plan.Columns.Count + 1];
        _claimAndRead = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new(StreamSql.Begin),
                new(StreamSql.IndexesOnly),
                new(StreamSql.IdleTimeout(idleTimeoutMs)),
                new(plan.Claim) { Parameters = { new() { Value = batchRows } } },
                // 019: the deployment, in the batch's transaction (a promote or abort is seen by the next batch).
                new(StreamSql.Deployment) { Parameters = { new() { Value = name } } },
                // 025: the shadow, in the batch's transaction too.
                new(StreamSql.Shadow) { Parameters = { new() { Value = name } } },
                // The read runs as the binding's owner (its grants, RLS, a view's functions), in the same round trip.
                new(plan.ReadAs),
                new(plan.Query),
                new(StreamSql.ResetRole),
            },
        };
        _write = new NpgsqlBatch(connection) { BatchCommands = { Upsert() } };
        _writeAndDelete = new NpgsqlBatch(connection) { BatchCommands = { Upsert(), Delete() } };
        if (shadow is null)
        {
            // Under a shadow (025) its writes commit the batch.
            _write.BatchCommands.Add(new(StreamSql.Commit));
            _writeAndDelete.BatchCommands.Add(new(StreamSql.Commit));
        }
    }

    public string Name { get; }

    public int Version => _plan.Version;

    public bool IsStale => Stopwatch.GetElapsedTime(_builtAt) > MaxAge;

    /// <summary>Fetches the table's plan and model on <paramref name="connection"/> and prepares its statements.</summary>
    public static async Task<StreamedTable> CreateAsync(NpgsqlConnection connection, string name, int batchRows, int idleTimeoutMs, int? scoreBatchSize, ModelCache cache,
        CancellationToken cancellationToken)
    {
        await using var planCommand = new NpgsqlCommand(StreamSql.Plan, connection) { Parameters = { new() { Value = name } } };
        var plan = StreamPlan.Parse((string?)await planCommand.ExecuteScalarAsync(cancellationToken) ?? throw new InvalidDataException($"No stream plan for {name}."));
        var model = await Registry.PostgresVersionBytes.LoadAsync(connection, plan.Model, plan.Version, plan.Sha256, cache, cancellationToken);
        if (model.Signature.Columns.Count != plan.Columns.Count)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"{plan.Model}@{plan.Version} decodes into {model.Signature.Columns.Count} columns; mad_out.{name} has {plan.Columns.Count}.");
        }

        var canary = await CanaryModelAsync(connection, plan, name, cache, cancellationToken);
        var scorerRows = Math.Min(batchRows, scoreBatchSize ?? batchRows);
        var shadow = await StreamShadow.CreateAsync(connection, name, plan, cache, scorerRows, cancellationToken);
        StreamedTable table;
        try
        {
            table = new StreamedTable(connection, name, plan, model, canary, shadow, batchRows, idleTimeoutMs, scorerRows);
        }
        catch
        {
            shadow?.Dispose();
            throw;
        }

        try
        {
            // Drift monitoring: the version's baseline, read again with the plan (at most MaxAge old).
            table._counter = await Monitoring.PostgresProfileCounts.CounterAsync(connection, plan.Model, plan.Version, plan.FeatureColumns, plan.Columns, cancellationToken);
            if (plan.CanaryVersion is { } canaryVersion)
            {
                // A canary's rows count under the canary version, against its own baseline (or its first window).
                table._canaryCounter = await Monitoring.PostgresProfileCounts.CounterAsync(connection, plan.Model, canaryVersion, plan.FeatureColumns, plan.Columns, cancellationToken);
            }

            await table._claimAndRead.PrepareAsync(cancellationToken);
            await table._write.PrepareAsync(cancellationToken);
            await table._writeAndDelete.PrepareAsync(cancellationToken);
            return table;
        }
        catch
        {
            table.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Drains one batch in one transaction: claims and locks up to the batch size of outbox rows, reads the claimed
    /// keys' current rows, scores them, upserts their predictions, deletes those of keys whose rows are gone, commits.
    /// Any failure leaves the transaction open for the caller to roll back, so the keys are drained again.
    /// </summary>
    public async Task<StreamBatchResult> DrainAsync(CancellationToken cancellationToken)
    {
        int keys, version;
        (int Version, double Percent, long Seed)? deployed = null;
        (int Version, double Percent, long Seed)? shadowed = null;
        await using (var reader = await _claimAndRead.ExecuteReaderAsync(cancellationToken))
        {
            await reader.ReadAsync(cancellationToken); // BEGIN and the SETs return no result set: the first is the claim's
            keys = reader.GetInt32(0);
            version = reader.IsDBNull(1) ? _plan.Version : reader.GetInt32(1);
            await reader.NextResultAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken)) // 019: the canary, if one runs
            {
                deployed = (reader.GetInt32(0), reader.GetDouble(1), reader.GetInt64(2));
            }

            await reader.NextResultAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken)) // 025: the shadow, if one runs
            {
                shadowed = (reader.GetInt32(0), reader.GetDouble(1), reader.GetInt64(2));
            }

            await reader.NextResultAsync(cancellationToken);
            await _rows.ReadAsync(reader, cancellationToken);
        }

        // 019: a canary started, ended or changed version since the plan: plan again, as for an alias move.
        // 025: so did a shadow.
        if (keys == 0 || version != _plan.Version || deployed?.Version != _plan.CanaryVersion || shadowed?.Version != _shadow?.Version)
        {
            // Nothing waits; or the reference now means another version: give the keys back and plan again.
            await using var end = new NpgsqlCommand(keys == 0 ? StreamSql.Commit : StreamSql.Rollback, _claimAndRead.Connection);
            await end.ExecuteNonQueryAsync(cancellationToken);
            return keys == 0 ? default : new StreamBatchResult(0, 0, 0, 0) { PlanChanged = true };
        }

        var failed = Score(deployed, cancellationToken);
        if (shadowed is { } s)
        {
            _shadow!.Score(_rows, s.Percent, s.Seed, _versions, cancellationToken);
        }

        if (_counter is not null)
        {
            // In the batch's transaction (opened by the claim), before the upsert commits it.
            await Monitoring.PostgresProfileCounts.AddAsync(_claimAndRead.Connection!, null, Name, _plan.Version, DateTime.UtcNow, _counter, cancellationToken);
        }

        if (_canaryCounter is not null && deployed is not null)
        {
            await Monitoring.PostgresProfileCounts.AddAsync(_claimAndRead.Connection!, null, Name, deployed.Value.Version, DateTime.UtcNow, _canaryCounter, cancellationToken);
        }

        var gone = keys - _rows.Count;
        var write = gone > 0 ? _writeAndDelete : _write;
        SetValues(write.BatchCommands[0].Parameters, withVersion: true);
        if (gone > 0)
        {
            SetValues(write.BatchCommands[1].Parameters, withVersion: false);
        }

        await write.ExecuteNonQueryAsync(cancellationToken);
        if (_shadow is not null)
        {
            await WriteShadowAsync(cancellationToken);
        }

        return new StreamBatchResult(keys, _rows.Count, failed, gone > 0 ? write.BatchCommands[1].RecordsAffected : 0);
    }

    public void Dispose()
    {
        _shadow?.Dispose();
        _claimAndRead.Dispose();
        _write.Dispose();
        _writeAndDelete.Dispose();
        _scorer.Dispose();
        _canaryScorer?.Dispose();
    }

    /// <summary>
    /// The shadow's rows after the served ones, and the COMMIT (025): rows that cannot be written roll back to the
    /// savepoint alone, and the served rows commit with the shadow's error recorded.
    /// </summary>
    private async Task WriteShadowAsync(CancellationToken cancellationToken)
    {
        var connection = _claimAndRead.Connection!;
        await using (var writes = _shadow!.Writes(connection, Name))
        {
            try
            {
                await writes.ExecuteNonQueryAsync(cancellationToken);
                return;
            }
            catch (PostgresException e) when (connection.State == System.Data.ConnectionState.Open)
            {
                await using var rollBack = _shadow.RollBack(connection, Name, e);
                await rollBack.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    private void SetValues(NpgsqlParameterCollection parameters, bool withVersion)
    {
        var count = withVersion ? _values.Length : _plan.KeyColumns.Length;
        for (var i = 0; i < count; i++)
        {
            parameters[i].Value = _values[i];
        }

        if (withVersion)
        {
            parameters[count].Value = _versions;
            parameters[count + 1].Value = _arms;
        }
    }

    /// <summary>
    /// Scores the batch's rows, each by its key's bucket under the canary read in the batch's transaction (019): the
    /// version and arm of each row go to the upsert beside its outputs. Returns the number of rows with an error.
    /// </summary>
    private int Score((int Version, double Percent, long Seed)? deployed, CancellationToken cancellationToken)
    {
        var count = _rows.Count;
        _versions = new int[count];
        _arms = new string[count];
        var anyCanary = false;
        for (var row = 0; row < count; row++)
        {
            var canary = deployed is { } d && Core.Deployments.StickyBucket.InCanary(d.Seed, _rows.KeyText(row), d.Percent);
            _canary[row] = canary;
            _versions[row] = canary ? deployed!.Value.Version : _plan.Version;
            _arms[row] = canary ? "canary" : "champion";
            anyCanary |= canary;
        }

        if (!anyCanary)
        {
            return _rows.Score(_scorer, _slots, _values, cancellationToken, _counter);
        }

        // Drift monitoring: each arm's rows against its own version's baseline.
        return _rows.Score(_scorer, _slots, _values, _canary, false, cancellationToken, _counter)
             + _rows.Score(_canaryScorer!, _canarySlots!, _values, _canary, true, cancellationToken, _canaryCounter);
    }

    /// <summary>The plan's canary model (019), checked to decode into the table's columns; null without a canary.</summary>
    private static async Task<OnnxModel?> CanaryModelAsync(NpgsqlConnection connection, StreamPlan plan, string name, ModelCache cache, CancellationToken cancellationToken)
    {
        if (plan.CanaryVersion is not { } version || plan.CanarySha256 is not { } sha256)
        {
            return null;
        }

        var model = await Registry.PostgresVersionBytes.LoadAsync(connection, plan.Model, version, sha256, cache, cancellationToken);
        if (model.Signature.Columns.Count != plan.Columns.Count)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"The canary {plan.Model}@{version} decodes into {model.Signature.Columns.Count} columns; mad_out.{name} has {plan.Columns.Count}: abort it with mad.abort_deployment.");
        }

        return model;
    }

    /// <summary>The upsert's parameters: keys as text[], each output column typed, the errors, then each row's version and arm.</summary>
    private NpgsqlBatchCommand Upsert()
    {
        var command = new NpgsqlBatchCommand(_plan.Upsert);
        AddKeyParameters(command);
        foreach (var column in _plan.Columns)
        {
            var element = column.Type switch
            {
                ColumnType.Real => NpgsqlDbType.Real,
                ColumnType.Integer => NpgsqlDbType.Bigint,
                _ => NpgsqlDbType.Text,
            };
            command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | element });
        }

        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer }); // 019: versions
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });    // 019: arms
        return command;
    }

    /// <summary>The delete's parameters: the keys found, as text[] per key column.</summary>
    private NpgsqlBatchCommand Delete()
    {
        var command = new NpgsqlBatchCommand(_plan.Delete);
        AddKeyParameters(command);
        return command;
    }

    private void AddKeyParameters(NpgsqlBatchCommand command)
    {
        foreach (var _ in _plan.KeyColumns)
        {
            command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        }
    }
}

/// <summary>
/// What one streaming batch did: distinct keys drained (0: none waiting), rows scored (of which failed carry an error)
/// and predictions deleted; or nothing, because the table's plan changed (<see cref="PlanChanged"/>: drain again).
/// </summary>
public readonly record struct StreamBatchResult(int Keys, long Rows, long Failed, long Deleted)
{
    public bool PlanChanged { get; init; }
}

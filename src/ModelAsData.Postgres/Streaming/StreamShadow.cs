using System.Text.Json;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres.Jobs;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Streaming;

/// <summary>
/// The shadow of one watched table on one drain connection (025, docs/DEPLOYMENTS.md): its version, model and the
/// statements of <c>mad.stream_shadow_plan</c>. Each batch it samples the keys (the canary's rule, the shadow's own
/// percent), scores them with the shadow's model into arrays of its own, and writes them into mad_shadow.&lt;table&gt;
/// after the served rows, behind a savepoint (<see cref="StreamedTable"/>). A shadow that cannot load or score keeps
/// its error in <see cref="Error"/> and writes no rows; it never fails the batch. Not thread-safe (one drain).
/// </summary>
internal sealed class StreamShadow : IDisposable
{
    private readonly StreamPlan _plan;
    private readonly ModelScorer? _scorer;
    private readonly FeatureSlots? _slots;
    private readonly string? _loadError;
    private readonly string _delete;
    private readonly string _insert;
    private bool[] _sampled = [];
    private object[] _values = [];
    private bool _recordedOnce;
    private string? _recorded;

    private StreamShadow(StreamPlan plan, int version, string delete, string insert, OnnxModel? model, string? loadError, int scoreBatchSize)
    {
        _plan = plan;
        Version = version;
        _delete = delete;
        _insert = insert;
        _loadError = loadError;
        if (model is not null)
        {
            _scorer = model.CreateScorer(scoreBatchSize);
            _slots = new FeatureSlots(model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
        }
    }

    public int Version { get; }

    /// <summary>Why the last batch's shadow did not score (null: it did).</summary>
    public string? Error { get; private set; }

    /// <summary>The keys the last batch's shadow sampled.</summary>
    public int Sampled { get; private set; }

    /// <summary>
    /// The table's shadow when its deployment has one (null otherwise). A model that cannot be loaded, or decodes into
    /// other columns, gives a shadow that only records why; database errors are thrown (the batch is retried).
    /// </summary>
    public static async Task<StreamShadow?> CreateAsync(NpgsqlConnection connection, string name, StreamPlan plan, ModelCache cache, int scoreBatchSize,
        CancellationToken cancellationToken)
    {
        await using var planCommand = new NpgsqlCommand(StreamSql.ShadowPlan, connection) { Parameters = { new() { Value = name } } };
        if (await planCommand.ExecuteScalarAsync(cancellationToken) is not string json)
        {
            return null;
        }

        int version;
        string sha256, delete, insert;
        using (var document = JsonDocument.Parse(json))
        {
            var root = document.RootElement;
            version = root.GetProperty("version").GetInt32();
            sha256 = root.GetProperty("sha256").GetString()!;
            delete = root.GetProperty("delete").GetString()!;
            insert = root.GetProperty("insert").GetString()!;
        }

        OnnxModel? model = null;
        string? error = null;
        try
        {
            // Inside the try: bytes that fail their sha256 (or a missing chunk) are a shadow that cannot load.
            model = await Registry.PostgresVersionBytes.LoadAsync(connection, plan.Model, version, sha256, cache, cancellationToken);
            if (model.Signature.Columns.Count != plan.Columns.Count)
            {
                error = $"The shadow {plan.Model}@{version} decodes into {model.Signature.Columns.Count} columns; mad_out.{name} has {plan.Columns.Count}.";
                model = null;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            error = $"The shadow {plan.Model}@{version} failed to load: {e.Message}";
        }

        return new StreamShadow(plan, version, delete, insert, model, error, scoreBatchSize);
    }

    /// <summary>
    /// Samples the batch's keys and scores them with the shadow's model into the insert's values, beside the version
    /// that served each (<paramref name="served"/>). A failure is kept in <see cref="Error"/>, with no rows.
    /// </summary>
    public void Score(StreamRows rows, double percent, long seed, int[] served, CancellationToken cancellationToken)
    {
        Error = _loadError;
        Sampled = 0;
        if (Error is not null)
        {
            return;
        }

        var count = rows.Count;
        if (_sampled.Length < count)
        {
            _sampled = new bool[rows.Capacity];
        }

        var picked = new List<int>();
        for (var row = 0; row < count; row++)
        {
            _sampled[row] = Core.Deployments.StickyBucket.InCanary(seed, rows.KeyText(row), percent);
            if (_sampled[row])
            {
                picked.Add(row);
            }
        }

        if (picked.Count == 0)
        {
            return;
        }

        var columns = _plan.Columns;
        var outputs = new Array[columns.Count];
        for (var c = 0; c < columns.Count; c++)
        {
            outputs[c] = columns[c].Type switch
            {
                ColumnType.Real => new float?[count],
                ColumnType.Integer => new long?[count],
                _ => new string?[count],
            };
        }

        var errors = new string?[count];
        try
        {
            rows.ScoreSampled(_scorer!, _slots!, outputs, errors, _sampled, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Error = $"The shadow (version {Version}) failed to score: {e.Message}";
            return;
        }

        // The insert's values: the sampled rows only, keys as text, outputs, errors, served versions, the version.
        var keyCount = _plan.KeyColumns.Length;
        _values = new object[keyCount + columns.Count + 3];
        for (var k = 0; k < keyCount; k++)
        {
            _values[k] = picked.Select(row => rows.Key(k, row)).ToArray();
        }

        for (var c = 0; c < columns.Count; c++)
        {
            var compact = Array.CreateInstance(outputs[c].GetType().GetElementType()!, picked.Count);
            for (var i = 0; i < picked.Count; i++)
            {
                compact.SetValue(outputs[c].GetValue(picked[i]), i);
            }

            _values[keyCount + c] = compact;
        }

        _values[keyCount + columns.Count] = picked.Select(row => errors[row]).ToArray();
        _values[keyCount + columns.Count + 1] = picked.Select(row => served[row]).ToArray();
        _values[keyCount + columns.Count + 2] = Version;
        Sampled = picked.Count;
    }

    /// <summary>
    /// The shadow's writes for a batch whose served rows were written (the transaction still open): a savepoint, the
    /// delete of the claimed keys' visible shadow rows, the insert of the sampled ones, the release, the error when it
    /// changed, and the COMMIT.
    /// </summary>
    public NpgsqlBatch Writes(NpgsqlConnection connection, string table)
    {
        var batch = new NpgsqlBatch(connection) { BatchCommands = { new(StreamSql.ShadowSavepoint), new(_delete) } };
        if (Sampled > 0)
        {
            var insert = new NpgsqlBatchCommand(_insert);
            foreach (var _ in _plan.KeyColumns)
            {
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            }

            foreach (var column in _plan.Columns)
            {
                var element = column.Type switch
                {
                    ColumnType.Real => NpgsqlDbType.Real,
                    ColumnType.Integer => NpgsqlDbType.Bigint,
                    _ => NpgsqlDbType.Text,
                };
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | element });
            }

            insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
            insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer });
            for (var i = 0; i < _values.Length; i++)
            {
                insert.Parameters[i].Value = _values[i];
            }

            batch.BatchCommands.Add(insert);
        }

        batch.BatchCommands.Add(new(StreamSql.ShadowRelease));
        AddRecord(batch, table, Error);
        batch.BatchCommands.Add(new(StreamSql.Commit));
        return batch;
    }

    /// <summary>After <see cref="Writes"/> failed: the shadow's rows go, the served ones stay and commit, with why.</summary>
    public NpgsqlBatch RollBack(NpgsqlConnection connection, string table, PostgresException failure)
    {
        Error = $"The shadow's rows could not be written to mad_shadow.{table}: {failure.MessageText}";
        var batch = new NpgsqlBatch(connection) { BatchCommands = { new(StreamSql.ShadowRollback) } };
        AddRecord(batch, table, Error);
        batch.BatchCommands.Add(new(StreamSql.Commit));
        return batch;
    }

    public void Dispose() => _scorer?.Dispose();

    /// <summary>Records the shadow's error in the binding when it differs from the last one this drain recorded.</summary>
    private void AddRecord(NpgsqlBatch batch, string table, string? error)
    {
        if (_recordedOnce && error == _recorded)
        {
            return;
        }

        batch.BatchCommands.Add(new(StreamSql.RecordShadow)
        {
            Parameters = { new() { Value = table }, new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text } },
        });
        (_recordedOnce, _recorded) = (true, error);
    }
}

using System.Globalization;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres.Jobs;
using Npgsql;

namespace ModelAsData.Postgres.Streaming;

/// <summary>
/// One streaming batch's rows, from the read to the upsert: their keys as text, their features as read, then their
/// predictions and errors as the column arrays the upsert takes. Reused across batches; holds at most the batch size.
/// </summary>
internal sealed class StreamRows
{
    private readonly StreamPlan _plan;
    private readonly string[][] _keys;
    private readonly double[] _numbers;
    private readonly string?[] _texts;
    private readonly bool[] _nulls;
    private readonly object?[] _tensors;
    private readonly bool[] _isTensor;
    private readonly int _featureCount;

    public StreamRows(StreamPlan plan, int capacity)
    {
        _plan = plan;
        Capacity = capacity;
        _featureCount = plan.FeatureColumns.Length;
        _keys = plan.KeyColumns.Select(_ => new string[capacity]).ToArray();
        _numbers = new double[capacity * _featureCount];
        _texts = new string?[capacity * _featureCount];
        _nulls = new bool[capacity * _featureCount];
        _tensors = new object?[capacity * _featureCount];
        _isTensor = plan.FeatureTypes.Select(PostgresArrays.IsTensor).ToArray();
    }

    public int Capacity { get; }

    public int Count { get; private set; }

    /// <summary>Reads the rows of the plan's query (keys as text, then the feature columns).</summary>
    public async Task ReadAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        Count = 0;
        var keyCount = _keys.Length;
        while (await reader.ReadAsync(cancellationToken))
        {
            if (Count == Capacity)
            {
                throw new InvalidOperationException($"The read returned more than the {Capacity} keys claimed.");
            }

            for (var k = 0; k < keyCount; k++)
            {
                _keys[k][Count] = reader.GetString(k);
            }

            var at = Count * _featureCount;
            for (var f = 0; f < _featureCount; f++)
            {
                var ordinal = keyCount + f;
                _texts[at + f] = null;
                _nulls[at + f] = reader.IsDBNull(ordinal);
                if (_nulls[at + f])
                {
                    continue;
                }

                if (_isTensor[f])
                {
                    _tensors[at + f] = ReadTensor(reader, ordinal);
                    continue;
                }

                switch (_plan.FeatureTypes[f])
                {
                    case "real": _numbers[at + f] = reader.GetFloat(ordinal); break;
                    case "double precision": _numbers[at + f] = reader.GetDouble(ordinal); break;
                    case "smallint": _numbers[at + f] = reader.GetInt16(ordinal); break;
                    case "integer": _numbers[at + f] = reader.GetInt32(ordinal); break;
                    case "bigint":
                        var whole = reader.GetInt64(ordinal);
                        if (FeatureSlots.IsExactDouble(whole)) _numbers[at + f] = whole;
                        else _texts[at + f] = FeatureSlots.Digits(whole);
                        break;
                    case "boolean": _numbers[at + f] = reader.GetBoolean(ordinal) ? 1 : 0; break;
                    default: _texts[at + f] = reader.GetString(ordinal); break;
                }
            }

            Count++;
        }
    }

    /// <summary>
    /// Scores the rows, as many per ONNX Runtime call as the scorer holds, into the upsert's parameter values: one
    /// array per key column, per output column, and the errors (a row that cannot be scored gets its error and null
    /// outputs). Returns the number of rows with an error.
    /// </summary>
    public int Score(ModelScorer scorer, FeatureSlots slots, object[] parameters, CancellationToken cancellationToken, Core.Monitoring.ProfileCounter? counter = null) =>
        Score(scorer, slots, parameters, null, false, cancellationToken, counter);

    /// <summary>The row's key in its canonical text (StickyBucket.KeyText), as mad.bucket hashes it (019).</summary>
    public string KeyText(int row)
    {
        var values = new object?[_keys.Length];
        for (var k = 0; k < _keys.Length; k++)
        {
            values[k] = _keys[k][row];
        }

        return Core.Deployments.StickyBucket.KeyText(values);
    }

    /// <summary>The row's value of key column <paramref name="k"/>, as text.</summary>
    public string Key(int k, int row) => _keys[k][row];

    /// <summary>
    /// Scores the rows flagged in <paramref name="sampled"/> into outputs and errors of the batch's length (a shadow's,
    /// 025): nothing else is touched. Throws what the model throws.
    /// </summary>
    public void ScoreSampled(ModelScorer scorer, FeatureSlots slots, Array[] outputs, string?[] errors, bool[] sampled, CancellationToken cancellationToken) =>
        ScoreRows(scorer, slots, outputs, errors, sampled, true, cancellationToken, null);

    /// <summary>
    /// As <see cref="Score(ModelScorer, FeatureSlots, object[], CancellationToken, Core.Monitoring.ProfileCounter?)"/>,
    /// under a canary (019): the champion's pass (<paramref name="canaryPass"/> false) makes the parameters and scores
    /// the rows whose <paramref name="canary"/> flag is false; the canary's pass then scores the others into the same
    /// parameters. The drift <paramref name="counter"/> counts the rows of the pass it is given to.
    /// </summary>
    public int Score(ModelScorer scorer, FeatureSlots slots, object[] parameters, bool[]? canary, bool canaryPass, CancellationToken cancellationToken,
        Core.Monitoring.ProfileCounter? counter = null)
    {
        var columns = _plan.Columns;
        var keyCount = _keys.Length;
        if (canaryPass)
        {
            return ScoreRows(scorer, slots, Enumerable.Range(0, columns.Count).Select(c => (Array)parameters[keyCount + c]).ToArray(),
                (string?[])parameters[keyCount + columns.Count], canary, true, cancellationToken, counter);
        }

        for (var k = 0; k < keyCount; k++)
        {
            parameters[k] = _keys[k].AsSpan(0, Count).ToArray();
        }

        var outputs = new Array[columns.Count];
        for (var c = 0; c < columns.Count; c++)
        {
            outputs[c] = columns[c].Type switch
            {
                ColumnType.Real => new float?[Count],
                ColumnType.Integer => new long?[Count],
                _ => new string?[Count],
            };
            parameters[keyCount + c] = outputs[c];
        }

        var errors = new string?[Count];
        parameters[keyCount + columns.Count] = errors;
        return ScoreRows(scorer, slots, outputs, errors, canary, false, cancellationToken, counter);
    }

    /// <summary>Scores the rows of one arm (all when <paramref name="canary"/> is null) into the outputs and errors.</summary>
    private int ScoreRows(ModelScorer scorer, FeatureSlots slots, Array[] outputs, string?[] errors, bool[]? canary, bool canaryPass, CancellationToken cancellationToken,
        Core.Monitoring.ProfileCounter? counter)
    {
        var failed = 0;
        var scorerRows = new int[scorer.Capacity];
        var first = 0;
        while (first < Count)
        {
            scorer.Clear();
            var row = first;
            for (; row < Count && !scorer.IsFull; row++)
            {
                if (canary is not null && canary[row] != canaryPass)
                {
                    continue;
                }

                var at = row * _featureCount;
                counter?.CountInputs(_nulls.AsSpan(at, _featureCount), _numbers.AsSpan(at, _featureCount), _texts.AsSpan(at, _featureCount)); // drift monitoring
                scorer.BeginRow();
                var error = slots.Set(scorer, _nulls.AsSpan(at, _featureCount), _numbers.AsSpan(at, _featureCount), _texts.AsSpan(at, _featureCount), _tensors.AsSpan(at, _featureCount));
                if (error is null)
                {
                    scorerRows[scorer.Count] = row;
                    scorer.EndRow();
                }
                else
                {
                    scorer.CancelRow();
                    errors[row] = error;
                    counter?.CountOutputs(default, -1);
                    failed++;
                }
            }

            if (scorer.Count > 0)
            {
                var scored = scorer.Score(cancellationToken);
                Decode(scored, scorerRows, outputs);
                for (var s = 0; s < scored.Count; s++)
                {
                    // ONNX Runtime failed on this row of a grouped batch: its error, as for values that do not fit.
                    var runError = scored.Error(s);
                    if (runError is not null)
                    {
                        errors[scorerRows[s]] = runError;
                        failed++;
                    }

                    counter?.CountOutputs(scored, runError is null ? s : -1); // drift monitoring
                }
            }

            first = row;
        }

        return failed;
    }

    private void Decode(ScoredBatch scored, int[] scorerRows, Array[] outputs)
    {
        var columns = _plan.Columns;
        for (var s = 0; s < scored.Count; s++)
        {
            var row = scorerRows[s];
            for (var c = 0; c < columns.Count && scored.Error(s) is null; c++)
            {
                switch (outputs[c])
                {
                    case float?[] reals: reals[row] = (float)scored.GetDouble(s, c); break;
                    case long?[] integers: integers[row] = scored.GetLong(s, c); break;
                    case string?[] texts:
                        texts[row] = columns[c].Type switch
                        {
                            ColumnType.Text => (string)scored.GetValue(s, c),
                            // As text, which the upsert casts to numeric(20,0): exact where a bigint parameter would overflow.
                            ColumnType.Uint64 => ((ulong)scored.GetValue(s, c)).ToString(CultureInfo.InvariantCulture),
                            _ => PostgresArrays.Literal(scored.GetTensor(s, c)),
                        };
                        break;
                }
            }
        }
    }

    /// <summary>
    /// A tensor column as Npgsql reads it (an array of its rank, or bytea's bytes); an array holding a NULL element,
    /// which Npgsql refuses to put in an array of numbers, is that row's error.
    /// </summary>
    private static object ReadTensor(NpgsqlDataReader reader, int ordinal)
    {
        try
        {
            return reader.GetValue(ordinal);
        }
        catch (InvalidCastException)
        {
            return "the array holds a NULL element";
        }
    }
}

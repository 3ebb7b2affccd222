using System.Globalization;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// The predictions of one <see cref="ModelScorer.Score"/> call, read by row and decoded column
/// (<see cref="ModelSignature.Columns"/>). Valid until the scorer scores again. A row ONNX Runtime
/// failed on has an <see cref="Error"/> and no values: reading them throws that error.
/// </summary>
public readonly struct ScoredBatch
{
    private readonly ModelScorer _scorer;

    internal ScoredBatch(ModelScorer scorer, int count)
    {
        _scorer = scorer;
        Count = count;
    }

    public int Count { get; }

    public IReadOnlyList<OutputColumn> Columns => _scorer.Model.Signature.Columns;

    /// <summary>Rows ONNX Runtime failed on (each has an <see cref="Error"/>); 0 when it scored them all.</summary>
    public int Failed => _scorer?.FailedCount ?? 0;

    /// <summary>
    /// Why ONNX Runtime could not score the row (the batch's other rows are scored), or null when it was scored.
    /// A caller records it as the row's error, as it records a row whose values do not fit.
    /// </summary>
    public string? Error(int row) => _scorer?.RowError(row);

    /// <summary>
    /// A column's value as a typed CLR object: double, long, string, ulong (<see cref="ColumnType.Uint64"/>), or for
    /// an array column a <see cref="RowTensor"/> (the row's elements and dimensions).
    /// </summary>
    public object GetValue(int row, int column)
    {
        ThrowIfFailed(row);
        var spec = Columns[column];
        var output = _scorer.Output(spec.Output);
        return spec.Type switch
        {
            ColumnType.Text => output.Strings[output.RowStart(row) + spec.Offset],
            ColumnType.Integer => output.GetLong(output.RowStart(row) + spec.Offset),
            ColumnType.Real => output.GetDouble(output.RowStart(row) + spec.Offset),
            ColumnType.Uint64 => output.Ulongs[output.RowStart(row) + spec.Offset],
            _ => GetTensor(row, column),
        };
    }

    /// <summary>A numeric column's value.</summary>
    public double GetDouble(int row, int column)
    {
        ThrowIfFailed(row);
        var spec = Columns[column];
        var output = _scorer.Output(spec.Output);
        return output.GetDouble(output.RowStart(row) + spec.Offset);
    }

    /// <summary>An integer column's value, exact past 2^53 (<see cref="GetDouble"/> rounds there).</summary>
    public long GetLong(int row, int column)
    {
        ThrowIfFailed(row);
        var spec = Columns[column];
        var output = _scorer.Output(spec.Output);
        return output.GetLong(output.RowStart(row) + spec.Offset);
    }

    /// <summary>All of the row's values of a numeric array column, flat.</summary>
    public double[] GetArray(int row, int column)
    {
        ThrowIfFailed(row);
        var output = _scorer.Output(Columns[column].Output);
        var start = output.RowStart(row);
        var values = new double[output.RowLength(row)];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = output.GetDouble(start + i);
        }

        return values;
    }

    /// <summary>
    /// The row's value of an array column with its dimensions, in the column's element type: float for
    /// <see cref="ColumnType.RealArray"/>, double, long, bool, string or ulong for the others.
    /// </summary>
    public RowTensor GetTensor(int row, int column)
    {
        ThrowIfFailed(row);
        var spec = Columns[column];
        var output = _scorer.Output(spec.Output);
        var start = output.RowStart(row);
        var length = output.RowLength(row);
        Array values = spec.Type switch
        {
            ColumnType.RealArray when output.Storage == FeatureType.Float => output.Floats.AsSpan(start, length).ToArray(),
            ColumnType.RealArray => Array.ConvertAll(GetArray(row, column), d => (float)d),
            ColumnType.DoubleArray => GetArray(row, column),
            ColumnType.IntegerArray when output.Storage == FeatureType.Int64 => output.Longs.AsSpan(start, length).ToArray(),
            ColumnType.IntegerArray => Array.ConvertAll(GetArray(row, column), d => (long)d),
            ColumnType.BooleanArray => output.Bools.AsSpan(start, length).ToArray(),
            ColumnType.TextArray => output.Strings.AsSpan(start, length).ToArray(),
            ColumnType.Uint64Array => output.Ulongs.AsSpan(start, length).ToArray(),
            _ => throw new InvalidOperationException($"Column '{spec.Name}' holds one value per row, not an array."),
        };
        return new RowTensor(values, output.RowDims(row));
    }

    /// <summary>
    /// The one value <c>predict()</c> returns: the first single-valued output (a label or a regression value), or for
    /// a model with only score vectors (a neural network), the index of the highest score.
    /// </summary>
    public object GetPrediction(int row)
    {
        ThrowIfFailed(row);
        var columns = Columns;
        for (var c = 0; c < columns.Count; c++)
        {
            if (_scorer.Output(columns[c].Output).Spec.Width == 1 && columns[c].Offset >= 0)
            {
                return GetValue(row, c);
            }
        }

        var output = _scorer.Output(columns[0].Output);
        if (output.Storage == FeatureType.String)
        {
            return GetValue(row, 0);
        }

        var best = 0;
        var start = output.RowStart(row);
        for (var i = 1; i < output.RowLength(row); i++)
        {
            if (output.GetDouble(start + i) > output.GetDouble(start + best))
            {
                best = i;
            }
        }

        return (long)best;
    }

    /// <summary>A row ONNX Runtime failed on has no values: a caller that reads them without asking gets its error.</summary>
    private void ThrowIfFailed(int row)
    {
        if (Failed > 0 && Error(row) is { } error)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch, error);
        }
    }

    /// <summary>Renders a value for display: invariant numbers, arrays in brackets.</summary>
    public static string Format(object? value) => value switch
    {
        null => "",
        double d => d.ToString("G7", CultureInfo.InvariantCulture),
        double[] a => "[" + string.Join(", ", a.Select(d => d.ToString("G7", CultureInfo.InvariantCulture))) + "]",
        RowTensor t => t.ToString(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

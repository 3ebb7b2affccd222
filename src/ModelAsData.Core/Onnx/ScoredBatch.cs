using System.Globalization;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// The predictions of one <see cref="ModelScorer.Score"/> call, read by row and decoded column
/// (<see cref="ModelSignature.Columns"/>). Valid until the scorer scores again.
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

    /// <summary>A column's value as a typed CLR object: double, long, string, or double[] for an array column.</summary>
    public object GetValue(int row, int column)
    {
        var spec = Columns[column];
        var output = _scorer.Output(spec.Output);
        return spec.Type switch
        {
            ColumnType.Text => output.Strings[(row * output.Width) + spec.Offset],
            ColumnType.Integer => (long)output.GetDouble((row * output.Width) + spec.Offset),
            ColumnType.Real => output.GetDouble((row * output.Width) + spec.Offset),
            _ => GetArray(row, column),
        };
    }

    /// <summary>A numeric column's value.</summary>
    public double GetDouble(int row, int column)
    {
        var spec = Columns[column];
        var output = _scorer.Output(spec.Output);
        return output.GetDouble((row * output.Width) + spec.Offset);
    }

    /// <summary>All of the row's values of an array column.</summary>
    public double[] GetArray(int row, int column)
    {
        var output = _scorer.Output(Columns[column].Output);
        var values = new double[output.Width];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = output.GetDouble((row * output.Width) + i);
        }

        return values;
    }

    /// <summary>
    /// The one value <c>predict()</c> returns: the first single-valued output (a label or a regression value), or for
    /// a model with only score vectors (a neural network), the index of the highest score.
    /// </summary>
    public object GetPrediction(int row)
    {
        var columns = Columns;
        for (var c = 0; c < columns.Count; c++)
        {
            if (_scorer.Output(columns[c].Output).Spec.Width == 1)
            {
                return GetValue(row, c);
            }
        }

        var output = _scorer.Output(columns[0].Output);
        var best = 0;
        for (var i = 1; i < output.Width; i++)
        {
            if (output.GetDouble((row * output.Width) + i) > output.GetDouble((row * output.Width) + best))
            {
                best = i;
            }
        }

        return (long)best;
    }

    /// <summary>Renders a value for display: invariant numbers, arrays in brackets.</summary>
    public static string Format(object? value) => value switch
    {
        null => "",
        double d => d.ToString("G7", CultureInfo.InvariantCulture),
        double[] a => "[" + string.Join(", ", a.Select(d => d.ToString("G7", CultureInfo.InvariantCulture))) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

using System.Globalization;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// Feeds one row's feature columns (as <c>mad.feature_reads</c> reads them: a number, or text, or null, or a whole
/// tensor from an array column) into a scorer: scalar columns into slots, a tensor column into its whole input.
/// Shared by refresh tasks and streaming batches, so a row gets the same value or error in both.
/// </summary>
internal sealed class FeatureSlots
{
    private readonly int[] _slots;
    private readonly int[] _slotFeature;
    private readonly bool[] _slotTakesFloat;
    private readonly (int Input, int Feature)[] _tensors;
    private readonly string[] _columnNames;

    /// <param name="slots">
    /// The plan's feeds in input order, each the index of the feature column that feeds it: one per scalar slot of
    /// an input fed from scalar columns, one for an input fed whole from a tensor column (its read type an array or
    /// bytea, <see cref="PostgresArrays.IsTensor"/>).
    /// </param>
    public FeatureSlots(OnnxModel model, int[] slots, string[] columnNames, string[] featureTypes)
    {
        _columnNames = columnNames;
        var scalarSlots = new List<int>();
        var scalarFeatures = new List<int>();
        var floats = new List<bool>();
        var tensors = new List<(int, int)>();
        var inputs = model.Signature.Inputs;
        for (int input = 0, feed = 0, slot = 0; input < inputs.Count; slot += inputs[input].Width, input++)
        {
            if (feed < slots.Length && PostgresArrays.IsTensor(featureTypes[slots[feed]]))
            {
                tensors.Add((input, slots[feed++]));
                continue;
            }

            for (var offset = 0; offset < inputs[input].Width && feed < slots.Length; offset++)
            {
                scalarSlots.Add(slot + offset);
                scalarFeatures.Add(slots[feed++]);
                floats.Add(inputs[input].Type == FeatureType.Float);
            }
        }

        _slots = scalarSlots.ToArray();
        _slotFeature = scalarFeatures.ToArray();
        _slotTakesFloat = floats.ToArray();
        _tensors = tensors.ToArray();
    }

    /// <summary>
    /// Sets the open row's slots and tensor inputs; returns null, or the first value that cannot feed the model,
    /// naming the column (the caller then cancels the row and writes the error). A tensor column's value is a
    /// <see cref="RowTensor"/>, a CLR array (its own dimensions), or the text of why it could not be read.
    /// </summary>
    public string? Set(ModelScorer scorer, ReadOnlySpan<bool> isNull, ReadOnlySpan<double> number, ReadOnlySpan<string?> text, ReadOnlySpan<object?> tensor = default)
    {
        for (var s = 0; s < _slots.Length; s++)
        {
            var slot = _slots[s];
            var f = _slotFeature[s];
            if (_slotTakesFloat[s] && !isNull[f] && text[f] is null)
            {
                scorer.SetFloat(slot, (float)number[f]); // the fast path: a number into a float input
                continue;
            }

            var error = isNull[f] ? $"null cannot feed {scorer.SlotName(slot)}"
                : text[f] is { } value ? SetText(scorer, slot, value)
                : scorer.Set(slot, number[f]);
            if (error is not null)
            {
                return $"column {_columnNames[f]}: {error}";
            }
        }

        foreach (var (input, f) in _tensors)
        {
            var spec = scorer.Model.Signature.Inputs[input];
            var error = isNull[f] ? $"null cannot feed input '{spec.Name}' {ModelScorer.DescribeRow(spec)}"
                : tensor[f] switch
                {
                    RowTensor row => scorer.SetTensor(input, row.Values, row.Dims),
                    Array array => scorer.SetTensor(input, array),
                    string why => $"{why}, which cannot feed input '{spec.Name}'",
                    _ => $"no array was read for input '{spec.Name}'",
                };
            if (error is not null)
            {
                return $"column {_columnNames[f]}: {error}";
            }
        }

        return null;
    }

    /// <summary>
    /// Whether a bigint survives the trip through a double (|v| ≤ 2^53). One past it is read as its digits instead,
    /// which an int64 input parses exactly and a float input as the nearest number.
    /// </summary>
    public static bool IsExactDouble(long value) => value is >= -(1L << 53) and <= 1L << 53;

    public static string Digits(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Text feeds a string input as it is; a numeric input when it parses as a number.</summary>
    private static string? SetText(ModelScorer scorer, int slot, string text)
    {
        var error = scorer.Set(slot, text);
        if (error is null)
        {
            return null;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) ? scorer.Set(slot, number) : error;
    }
}

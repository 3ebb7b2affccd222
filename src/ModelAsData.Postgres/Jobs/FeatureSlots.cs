using System.Globalization;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// Feeds one row's feature columns (as <c>mad.feature_reads</c> reads them: a number, or text, or null) into a
/// scorer's slots. Shared by refresh tasks and streaming batches, so a row gets the same value or error in both.
/// </summary>
internal sealed class FeatureSlots
{
    private readonly int[] _slots;
    private readonly bool[] _slotTakesFloat;
    private readonly string[] _columnNames;

    /// <param name="slots">For each model slot, the index of the feature column that feeds it.</param>
    public FeatureSlots(OnnxModel model, int[] slots, string[] columnNames)
    {
        _slots = slots;
        _columnNames = columnNames;
        _slotTakesFloat = model.Signature.Inputs.SelectMany(i => Enumerable.Repeat(i.Type == FeatureType.Float, i.Width)).ToArray();
    }

    /// <summary>
    /// Sets the open row's slots; returns null, or the first value that cannot feed its slot, naming the column
    /// (the caller then cancels the row and writes the error).
    /// </summary>
    public string? Set(ModelScorer scorer, ReadOnlySpan<bool> isNull, ReadOnlySpan<double> number, ReadOnlySpan<string?> text)
    {
        for (var slot = 0; slot < _slots.Length; slot++)
        {
            var f = _slots[slot];
            if (_slotTakesFloat[slot] && !isNull[f] && text[f] is null)
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

        return null;
    }

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

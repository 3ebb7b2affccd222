namespace ModelAsData.Core.Onnx;

/// <summary>How a decoded output column is typed in an output table.</summary>
public enum ColumnType
{
    /// <summary>A floating-point value.</summary>
    Real,
    /// <summary>A whole number (labels, counts, booleans as 0/1).</summary>
    Integer,
    /// <summary>A string label.</summary>
    Text,
    /// <summary>All of an output's values for the row (an output too wide, or of unknown width).</summary>
    RealArray,
}

/// <summary>
/// One column of decoded predictions: a label, a regression value, one class's probability, or a whole array.
/// </summary>
/// <param name="Name">A lower-case identifier, unique among the model's columns.</param>
/// <param name="Type">How the column is typed in an output table.</param>
/// <param name="Output">Index of the model output it comes from.</param>
/// <param name="Offset">Index of the value within the output's row; -1 for a whole-array column.</param>
/// <param name="Class">The class label for a per-class probability column.</param>
public sealed record OutputColumn(string Name, ColumnType Type, int Output, int Offset, string? Class);

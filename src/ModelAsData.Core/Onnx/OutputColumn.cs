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
    /// <summary>All of a double output's values for the row (<c>double precision[]</c>).</summary>
    DoubleArray,
    /// <summary>All of an integer output's values for the row (<c>bigint[]</c>; every integer type but uint64 fits).</summary>
    IntegerArray,
    /// <summary>All of a bool output's values for the row (<c>boolean[]</c>).</summary>
    BooleanArray,
    /// <summary>All of a string output's values for the row (<c>text[]</c>).</summary>
    TextArray,
    /// <summary>
    /// One uint64 value, exactly: PostgreSQL <c>numeric(20,0)</c> (it has no unsigned 64-bit type and bigint stops at
    /// 2^63 - 1), SQLite TEXT of its decimal digits (INTEGER is signed 64-bit, and NUMERIC affinity turns a value past
    /// it into a REAL, which keeps 53 bits).
    /// </summary>
    Uint64,
    /// <summary>All of a uint64 output's values for the row, exactly: PostgreSQL <c>numeric[]</c>, SQLite JSON text of whole numbers.</summary>
    Uint64Array,
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

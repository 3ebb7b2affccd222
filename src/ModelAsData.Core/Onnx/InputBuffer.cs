using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using ModelAsData.Core.Onnx.Tensors;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// The rows of one model input, in the managed array of its element type (the six tabular types), or as the
/// little-endian bytes ONNX Runtime lays the others out in (uint8, float16, …). Numeric tensors are handed to ONNX
/// Runtime over this memory without a copy; the value for one row count is made once and reused. An input with a
/// dynamic dimension after the batch (<see cref="InputSpec.IsRagged"/>) keeps each row's values and dimensions
/// (<see cref="RowStart"/>, <see cref="RowDims"/>); the scorer groups such rows by their dimensions
/// (<see cref="ModelScorer"/>).
/// </summary>
internal sealed partial class InputBuffer : IDisposable
{
    private float[]? _floats;
    private double[]? _doubles;
    private long[]? _longs;
    private int[]? _ints;
    private string[]? _strings;
    private bool[]? _bools;
    private byte[]? _raw;
    private readonly int _size;
    private readonly int[] _rowStart;
    private readonly long[][] _rowDims;
    private OrtValue? _value;
    private GCHandle _pin;
    private int _valueRows;

    public InputBuffer(InputSpec spec, int capacity)
    {
        Spec = spec;
        _size = FeatureTypes.Size(spec.Type);
        IsRagged = spec.IsRagged;
        _rowStart = new int[capacity + 1];
        _rowDims = IsRagged ? new long[capacity][] : [];
        Allocate(IsRagged ? 16 * capacity : capacity * spec.Width);
    }

    public InputSpec Spec { get; }

    /// <summary>Whether rows differ in size (a dynamic dimension after the batch).</summary>
    public bool IsRagged { get; }

    /// <summary>Where the values of a row start; a ragged row's are set by <see cref="BeginRagged"/>.</summary>
    public int RowStart(int row) => IsRagged ? _rowStart[row] : row * Spec.Width;

    /// <summary>The dimensions of a ragged row's tensor (without the batch dimension).</summary>
    public long[] RowDims(int row) => _rowDims[row];

    /// <summary>
    /// Makes room for a ragged row of <paramref name="dims"/> at <paramref name="row"/> (rows are written in order);
    /// returns the index of its first value.
    /// </summary>
    public int BeginRagged(int row, long[] dims)
    {
        var length = checked((int)Tensor.ElementsOf(dims));
        var start = _rowStart[row];
        EnsureLength(start + length);
        _rowDims[row] = dims;
        _rowStart[row + 1] = start + length;
        return start;
    }

    public void SetFloat(int index, float value) => _floats![index] = value;

    /// <summary>Stores a number; returns why it cannot feed this input, or null.</summary>
    public string? Set(int index, double value)
    {
        switch (Spec.Type)
        {
            case FeatureType.Float: _floats![index] = (float)value; return null;
            case FeatureType.Double: _doubles![index] = value; return null;
            case FeatureType.Float16: Raw<ushort>()[index] = BitConverter.HalfToUInt16Bits((Half)value); return null;
            case FeatureType.Bfloat16: Raw<ushort>()[index] = TensorJson.ToBfloat16((float)value); return null;
            case FeatureType.String: _strings![index] = value.ToString("R", CultureInfo.InvariantCulture); return null;
            case FeatureType.Uint64 when double.IsInteger(value) && value is >= 0 and < 1.8e19: Raw<ulong>()[index] = (ulong)value; return null;
            case FeatureType.Uint64: return $"{value.ToString("R", CultureInfo.InvariantCulture)} does not fit {TypeName}";
            case var _ when double.IsInteger(value) && Math.Abs(value) < 9.2e18: return Set(index, (long)value);
            default: return $"{value.ToString("R", CultureInfo.InvariantCulture)} does not fit {TypeName}";
        }
    }

    public string? Set(int index, long value)
    {
        switch (Spec.Type)
        {
            case FeatureType.Float: _floats![index] = value; return null;
            case FeatureType.Double: _doubles![index] = value; return null;
            case FeatureType.Int64: _longs![index] = value; return null;
            case FeatureType.Int32 when value is >= int.MinValue and <= int.MaxValue: _ints![index] = (int)value; return null;
            case FeatureType.String: _strings![index] = value.ToString(CultureInfo.InvariantCulture); return null;
            case FeatureType.Bool when value is 0 or 1: _bools![index] = value == 1; return null;
            case FeatureType.Uint8 when value is >= byte.MinValue and <= byte.MaxValue: _raw![index] = (byte)value; return null;
            case FeatureType.Int8 when value is >= sbyte.MinValue and <= sbyte.MaxValue: _raw![index] = (byte)(sbyte)value; return null;
            case FeatureType.Int16 when value is >= short.MinValue and <= short.MaxValue: Raw<short>()[index] = (short)value; return null;
            case FeatureType.Uint16 when value is >= ushort.MinValue and <= ushort.MaxValue: Raw<ushort>()[index] = (ushort)value; return null;
            case FeatureType.Uint32 when value is >= uint.MinValue and <= uint.MaxValue: Raw<uint>()[index] = (uint)value; return null;
            case FeatureType.Uint64 when value >= 0: Raw<ulong>()[index] = (ulong)value; return null;
            case FeatureType.Float16 or FeatureType.Bfloat16: return Set(index, (double)value);
            default: return $"{value.ToString(CultureInfo.InvariantCulture)} does not fit {TypeName}";
        }
    }

    public string? Set(int index, string value)
    {
        switch (Spec.Type)
        {
            case FeatureType.String: _strings![index] = value; return null;
            case FeatureType.Bool when bool.TryParse(value, out var flag): _bools![index] = flag; return null;
            case FeatureType.Uint64 when ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var whole): Raw<ulong>()[index] = whole; return null;
            // Whole numbers as text (numeric columns that feed 64-bit inputs are read so) keep every digit past 2^53.
            case FeatureType.Int64 when long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var signed): _longs![index] = signed; return null;
            default: return $"text '{Shorten(value)}' cannot feed {TypeName}";
        }
    }

    /// <summary>A decimal (Npgsql's numeric): a whole one exactly (uint64 and int64 past 2^53), any other as a double.</summary>
    public string? Set(int index, decimal value)
    {
        if (decimal.IsInteger(value))
        {
            if (Spec.Type == FeatureType.Uint64 && value is >= 0 and <= ulong.MaxValue)
            {
                Raw<ulong>()[index] = (ulong)value;
                return null;
            }

            if (value is >= long.MinValue and <= long.MaxValue)
            {
                return Set(index, (long)value);
            }
        }

        return Set(index, (double)value);
    }

    public string? Set(int index, bool value) => Spec.Type == FeatureType.String
        ? Set(index, value ? "true" : "false")
        : Set(index, value ? 1L : 0L);

    /// <summary>The input as an ONNX Runtime value of <paramref name="rows"/> rows: owned by this buffer, but for strings, which the caller disposes.</summary>
    public OrtValue ToOrtValue(int rows)
    {
        if (_strings is not null)
        {
            return StringTensor(Shape(rows), _strings, rows * Spec.Width); // The caller disposes it after the call.
        }

        if (_value is not null && _valueRows == rows)
        {
            return _value;
        }

        ReleaseValue();
        _value = Over(this, 0, rows * Spec.Width, Shape(rows), ref _pin);
        _valueRows = rows;
        return _value;
    }

    public void Dispose() => ReleaseValue();

    /// <summary>The shape of a batch of <paramref name="rows"/> rows of this input's fixed shape.</summary>
    private long[] Shape(int rows)
    {
        var shape = (long[])Spec.Shape.Clone();
        if (shape.Length > 0 && shape[0] < 0)
        {
            shape[0] = rows;
        }

        return shape;
    }

    private void ReleaseValue()
    {
        _value?.Dispose();
        _value = null;
        if (_pin.IsAllocated)
        {
            _pin.Free();
        }
    }

    private Span<T> Raw<T>() where T : struct => MemoryMarshal.Cast<byte, T>(_raw.AsSpan());

    private void Allocate(int length)
    {
        length = Math.Max(length, 1);
        switch (Spec.Type)
        {
            case FeatureType.Float: _floats = new float[length]; break;
            case FeatureType.Double: _doubles = new double[length]; break;
            case FeatureType.Int64: _longs = new long[length]; break;
            case FeatureType.Int32: _ints = new int[length]; break;
            case FeatureType.String: _strings = new string[length]; Array.Fill(_strings, string.Empty); break;
            case FeatureType.Bool: _bools = new bool[length]; break;
            default: _raw = new byte[length * _size]; break;
        }
    }

    /// <summary>Grows a ragged input's storage (doubling), keeping what rows hold so far.</summary>
    private void EnsureLength(int length)
    {
        var have = Length;
        if (have >= length)
        {
            return;
        }

        var grown = Math.Max(length, have * 2);
        ReleaseValue();
        switch (Spec.Type)
        {
            case FeatureType.Float: Array.Resize(ref _floats, grown); break;
            case FeatureType.Double: Array.Resize(ref _doubles, grown); break;
            case FeatureType.Int64: Array.Resize(ref _longs, grown); break;
            case FeatureType.Int32: Array.Resize(ref _ints, grown); break;
            case FeatureType.String:
                Array.Resize(ref _strings, grown);
                Array.Fill(_strings, string.Empty, have, grown - have);
                break;
            case FeatureType.Bool: Array.Resize(ref _bools, grown); break;
            default: Array.Resize(ref _raw, grown * _size); break;
        }
    }

    private int Length => Spec.Type switch
    {
        FeatureType.Float => _floats!.Length,
        FeatureType.Double => _doubles!.Length,
        FeatureType.Int64 => _longs!.Length,
        FeatureType.Int32 => _ints!.Length,
        FeatureType.String => _strings!.Length,
        FeatureType.Bool => _bools!.Length,
        _ => _raw!.Length / _size,
    };

    private string TypeName => $"input '{Spec.Name}' ({FeatureTypes.Name(Spec.Type)})";

    private static string Shorten(string value) => value.Length <= 40 ? value : value[..40] + "…";
}

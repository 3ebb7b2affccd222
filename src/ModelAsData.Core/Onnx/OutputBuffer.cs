using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// The rows of one model output after a call, as managed numbers or strings. When every output's size is known in
/// advance ONNX Runtime writes straight into these arrays; otherwise its results are copied in. Element types that
/// the six arrays do not have are widened without loss on the way in (float16 and bfloat16 to float, the small and
/// unsigned integers to long; see <see cref="FeatureTypes.Storage"/>). After a grouped call (rows of different
/// sizes, <see cref="ModelScorer"/>), each row has its own start, length and dimensions.
/// </summary>
internal sealed class OutputBuffer : IDisposable
{
    private readonly FeatureType _storage;
    private OrtValue? _value;
    private int _valueRows;
    private long[] _uniformDims = [];
    private int[] _rowStart = [];
    private int[] _rowLength = [];
    private long[][] _rowDims = [];
    private int _used;

    public OutputBuffer(OutputSpec spec, int capacity)
    {
        Spec = spec;
        _storage = FeatureTypes.Storage(spec.Type);
        Width = spec.Width ?? 0;
        if (spec.Width is { } width)
        {
            Allocate(capacity * width);
            _uniformDims = spec.Classes is not null ? [spec.Classes.Count] : spec.Shape.Length <= 1 ? [] : spec.Shape[1..];
            _uniformDims = _uniformDims.Select(d => Math.Max(d, 0)).ToArray();
        }
    }

    public OutputSpec Spec { get; }

    /// <summary>Values per row in the last call (of the same size for every row, when not <see cref="IsGrouped"/>).</summary>
    public int Width { get; private set; }

    /// <summary>Whether the last call ran rows in groups, each row with its own size.</summary>
    public bool IsGrouped { get; private set; }

    public float[] Floats { get; private set; } = [];

    public double[] Doubles { get; private set; } = [];

    public long[] Longs { get; private set; } = [];

    public int[] Ints { get; private set; } = [];

    public bool[] Bools { get; private set; } = [];

    public string[] Strings { get; private set; } = [];

    /// <summary>A uint64 output's values, kept as they are (no array above holds them all).</summary>
    public ulong[] Ulongs { get; private set; } = [];

    /// <summary>Whether ONNX Runtime can write this output into managed memory given in advance.</summary>
    public bool CanPreallocate => Spec.Width is not null && Spec.Type != FeatureType.String && FeatureTypes.IsTabular(Spec.Type)
        && (Spec.Shape.Length <= 1 || Spec.Shape[0] is < 0 or 1 || Spec.Classes is not null);

    /// <summary>The kind of array the values are kept in.</summary>
    public FeatureType Storage => _storage;

    public int RowStart(int row) => IsGrouped ? _rowStart[row] : row * Width;

    public int RowLength(int row) => IsGrouped ? _rowLength[row] : Width;

    /// <summary>The dimensions of one row's tensor (without the batch dimension).</summary>
    public long[] RowDims(int row) => IsGrouped ? _rowDims[row] : _uniformDims;

    public double GetDouble(int index) => _storage switch
    {
        FeatureType.Float => Floats[index],
        FeatureType.Double => Doubles[index],
        FeatureType.Int64 => Longs[index],
        FeatureType.Int32 => Ints[index],
        FeatureType.Bool => Bools[index] ? 1 : 0,
        // Rounded above 2^53: for what compares numbers (argmax, drift bins), never for what is stored (Ulongs).
        FeatureType.Uint64 => Ulongs[index],
        _ => throw new InvalidOperationException($"Output '{Spec.Name}' holds strings, not numbers."),
    };

    /// <summary>
    /// An integer output's value exactly: an int64 past 2^53 would round through <see cref="GetDouble"/>.
    /// </summary>
    public long GetLong(int index) => _storage switch
    {
        FeatureType.Int64 => Longs[index],
        FeatureType.Int32 => Ints[index],
        FeatureType.Bool => Bools[index] ? 1 : 0,
        _ => (long)GetDouble(index),
    };

    /// <summary>An ONNX Runtime value over this buffer's memory for <paramref name="rows"/> rows.</summary>
    public OrtValue ToOrtValue(int rows)
    {
        IsGrouped = false;
        if (_value is not null && _valueRows == rows)
        {
            return _value;
        }

        _value?.Dispose();
        var shape = Spec.Shape.Length <= 1 ? new long[] { rows } : (long[])Spec.Shape.Clone();
        shape[0] = rows;
        if (Spec.Classes is not null)
        {
            shape = [rows, Spec.Classes.Count];
        }

        var length = rows * Width;
        _value = Spec.Type switch
        {
            FeatureType.Float => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, Floats.AsMemory(0, length), shape),
            FeatureType.Double => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, Doubles.AsMemory(0, length), shape),
            FeatureType.Int64 => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, Longs.AsMemory(0, length), shape),
            FeatureType.Int32 => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, Ints.AsMemory(0, length), shape),
            FeatureType.Bool => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, Bools.AsMemory(0, length), shape),
            _ => throw new InvalidOperationException("String outputs cannot be preallocated."),
        };
        _valueRows = rows;
        return _value;
    }

    /// <summary>Copies an output ONNX Runtime allocated for <paramref name="rows"/> rows of the same size.</summary>
    public void CopyFrom(OrtValue value, int rows)
    {
        IsGrouped = false;
        var info = value.GetTensorTypeAndShape();
        var count = checked((int)info.ElementCount);
        Width = rows == 0 ? 0 : count / rows;
        _uniformDims = RowDimsOf(info.Shape, rows);
        if (Spec.Type == FeatureType.String)
        {
            Strings = value.GetStringTensorAsArray();
            return;
        }

        if (LengthOf() < count)
        {
            Allocate(count);
        }

        CopyValues(value, 0, count, 0);
    }

    /// <summary>Starts a grouped call of <paramref name="rows"/> rows: each group's rows are then added by <see cref="AddGroup"/>.</summary>
    public void BeginGroups(int rows)
    {
        IsGrouped = true;
        _used = 0;
        if (_rowStart.Length < rows)
        {
            _rowStart = new int[rows];
            _rowLength = new int[rows];
            _rowDims = new long[rows][];
        }
    }

    /// <summary>Adds the output of one group: its <paramref name="rows"/> (scorer rows, in the group's order) share its value.</summary>
    public void AddGroup(OrtValue value, ReadOnlySpan<int> rows)
    {
        var info = value.GetTensorTypeAndShape();
        var count = checked((int)info.ElementCount);
        var width = rows.Length == 0 ? 0 : count / rows.Length;
        var dims = RowDimsOf(info.Shape, rows.Length);
        if (LengthOf() < _used + count)
        {
            Grow(Math.Max(_used + count, LengthOf() * 2));
        }

        if (Spec.Type == FeatureType.String)
        {
            value.GetStringTensorAsArray().CopyTo(Strings, _used);
        }
        else
        {
            CopyValues(value, 0, count, _used);
        }

        for (var j = 0; j < rows.Length; j++)
        {
            _rowStart[rows[j]] = _used + (j * width);
            _rowLength[rows[j]] = width;
            _rowDims[rows[j]] = dims;
        }

        _used += count;
    }

    /// <summary>Marks a row of a grouped call that ONNX Runtime failed on: it has no values (its error is the scorer's).</summary>
    public void FailRow(int row)
    {
        _rowStart[row] = 0;
        _rowLength[row] = 0;
        _rowDims[row] = [];
    }

    public void Dispose() => _value?.Dispose();

    /// <summary>A row's dimensions: the batch dimension dropped when it counts the rows, else (one row) the whole shape.</summary>
    private static long[] RowDimsOf(long[] shape, int rows) =>
        shape.Length > 0 && shape[0] == rows ? shape[1..] : shape;

    /// <summary>Copies <paramref name="count"/> elements of an ONNX Runtime value into storage at <paramref name="at"/>, widening where needed.</summary>
    private void CopyValues(OrtValue value, int first, int count, int at)
    {
        switch (Spec.Type)
        {
            case FeatureType.Float: value.GetTensorDataAsSpan<float>().Slice(first, count).CopyTo(Floats.AsSpan(at)); break;
            case FeatureType.Double: value.GetTensorDataAsSpan<double>().Slice(first, count).CopyTo(Doubles.AsSpan(at)); break;
            case FeatureType.Int64: value.GetTensorDataAsSpan<long>().Slice(first, count).CopyTo(Longs.AsSpan(at)); break;
            case FeatureType.Int32: value.GetTensorDataAsSpan<int>().Slice(first, count).CopyTo(Ints.AsSpan(at)); break;
            case FeatureType.Bool: value.GetTensorDataAsSpan<bool>().Slice(first, count).CopyTo(Bools.AsSpan(at)); break;
            case FeatureType.Uint64: value.GetTensorDataAsSpan<ulong>().Slice(first, count).CopyTo(Ulongs.AsSpan(at)); break;
            default: Widen(Spec.Type, value.GetTensorMutableRawData(), first, count, _storage == FeatureType.Float ? Floats.AsSpan(at) : default, _storage == FeatureType.Int64 ? Longs.AsSpan(at) : default); break;
        }
    }

    /// <summary>Widens the element types the six arrays do not have, exactly: every float16/bfloat16 is a float, every small integer a long.</summary>
    internal static void Widen(FeatureType type, ReadOnlySpan<byte> raw, int first, int count, Span<float> floats, Span<long> longs)
    {
        switch (type)
        {
            case FeatureType.Float16:
                var halves = MemoryMarshal.Cast<byte, ushort>(raw).Slice(first, count);
                for (var i = 0; i < count; i++)
                {
                    floats[i] = (float)BitConverter.UInt16BitsToHalf(halves[i]);
                }

                break;
            case FeatureType.Bfloat16:
                var brains = MemoryMarshal.Cast<byte, ushort>(raw).Slice(first, count);
                for (var i = 0; i < count; i++)
                {
                    floats[i] = BitConverter.UInt32BitsToSingle((uint)brains[i] << 16);
                }

                break;
            case FeatureType.Uint8: for (var i = 0; i < count; i++) { longs[i] = raw[first + i]; } break;
            case FeatureType.Int8: for (var i = 0; i < count; i++) { longs[i] = (sbyte)raw[first + i]; } break;
            case FeatureType.Int16: Copy(MemoryMarshal.Cast<byte, short>(raw).Slice(first, count), longs); break;
            case FeatureType.Uint16: Copy(MemoryMarshal.Cast<byte, ushort>(raw).Slice(first, count), longs); break;
            case FeatureType.Uint32: Copy(MemoryMarshal.Cast<byte, uint>(raw).Slice(first, count), longs); break;
            default: throw new InvalidOperationException($"Output element type {FeatureTypes.Name(type)} is not kept in rows.");
        }
    }

    private static void Copy<T>(ReadOnlySpan<T> source, Span<long> longs) where T : struct, IConvertible
    {
        for (var i = 0; i < source.Length; i++)
        {
            longs[i] = Convert.ToInt64(source[i], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    private int LengthOf() => _storage switch
    {
        FeatureType.Float => Floats.Length,
        FeatureType.Double => Doubles.Length,
        FeatureType.Int64 => Longs.Length,
        FeatureType.Int32 => Ints.Length,
        FeatureType.Bool => Bools.Length,
        FeatureType.Uint64 => Ulongs.Length,
        _ => Strings.Length,
    };

    private void Allocate(int length)
    {
        _value?.Dispose();
        _value = null;
        switch (_storage)
        {
            case FeatureType.Float: Floats = new float[length]; break;
            case FeatureType.Double: Doubles = new double[length]; break;
            case FeatureType.Int64: Longs = new long[length]; break;
            case FeatureType.Int32: Ints = new int[length]; break;
            case FeatureType.Bool: Bools = new bool[length]; break;
            case FeatureType.Uint64: Ulongs = new ulong[length]; break;
            case FeatureType.String: Strings = new string[length]; break;
        }
    }

    /// <summary>Grows storage keeping what earlier groups wrote.</summary>
    private void Grow(int length)
    {
        _value?.Dispose();
        _value = null;
        switch (_storage)
        {
            case FeatureType.Float: { var a = Floats; Array.Resize(ref a, length); Floats = a; break; }
            case FeatureType.Double: { var a = Doubles; Array.Resize(ref a, length); Doubles = a; break; }
            case FeatureType.Int64: { var a = Longs; Array.Resize(ref a, length); Longs = a; break; }
            case FeatureType.Int32: { var a = Ints; Array.Resize(ref a, length); Ints = a; break; }
            case FeatureType.Bool: { var a = Bools; Array.Resize(ref a, length); Bools = a; break; }
            case FeatureType.Uint64: { var a = Ulongs; Array.Resize(ref a, length); Ulongs = a; break; }
            case FeatureType.String: { var a = Strings; Array.Resize(ref a, length); Strings = a; break; }
        }
    }
}

using System.Globalization;
using Microsoft.ML.OnnxRuntime;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// The rows of one model input, in the managed array of its element type. Numeric tensors are handed to ONNX
/// Runtime over this memory without a copy; the values for one row count are made once and reused.
/// </summary>
internal sealed class InputBuffer : IDisposable
{
    private readonly float[]? _floats;
    private readonly double[]? _doubles;
    private readonly long[]? _longs;
    private readonly int[]? _ints;
    private readonly string[]? _strings;
    private readonly bool[]? _bools;
    private OrtValue? _value;
    private int _valueRows;

    public InputBuffer(InputSpec spec, int capacity)
    {
        Spec = spec;
        var length = capacity * spec.Width;
        switch (spec.Type)
        {
            case FeatureType.Float: _floats = new float[length]; break;
            case FeatureType.Double: _doubles = new double[length]; break;
            case FeatureType.Int64: _longs = new long[length]; break;
            case FeatureType.Int32: _ints = new int[length]; break;
            case FeatureType.String: _strings = new string[length]; Array.Fill(_strings, string.Empty); break;
            case FeatureType.Bool: _bools = new bool[length]; break;
        }
    }

    public InputSpec Spec { get; }

    public void SetFloat(int index, float value) => _floats![index] = value;

    /// <summary>Stores a number; returns why it cannot feed this input, or null.</summary>
    public string? Set(int index, double value)
    {
        switch (Spec.Type)
        {
            case FeatureType.Float: _floats![index] = (float)value; return null;
            case FeatureType.Double: _doubles![index] = value; return null;
            case FeatureType.Int64 when double.IsInteger(value) && Math.Abs(value) < 9.2e18: _longs![index] = (long)value; return null;
            case FeatureType.Int32 when double.IsInteger(value) && value is >= int.MinValue and <= int.MaxValue: _ints![index] = (int)value; return null;
            case FeatureType.String: _strings![index] = value.ToString("R", CultureInfo.InvariantCulture); return null;
            case FeatureType.Bool when value is 0 or 1: _bools![index] = value == 1; return null;
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
            default: return $"{value.ToString(CultureInfo.InvariantCulture)} does not fit {TypeName}";
        }
    }

    public string? Set(int index, string value)
    {
        switch (Spec.Type)
        {
            case FeatureType.String: _strings![index] = value; return null;
            case FeatureType.Bool when bool.TryParse(value, out var flag): _bools![index] = flag; return null;
            default: return $"text '{Shorten(value)}' cannot feed {TypeName}";
        }
    }

    public string? Set(int index, bool value) => Spec.Type == FeatureType.String
        ? Set(index, value ? "true" : "false")
        : Set(index, value ? 1L : 0L);

    /// <summary>The input as an ONNX Runtime value of <paramref name="rows"/> rows: owned by this buffer, but for strings, which the caller disposes.</summary>
    public OrtValue ToOrtValue(int rows)
    {
        if (_strings is not null)
        {
            return StringTensor(Shape(rows), rows * Spec.Width); // The caller disposes it after the call.
        }

        if (_value is not null && _valueRows == rows)
        {
            return _value;
        }

        _value?.Dispose();
        var shape = Shape(rows);
        var length = rows * Spec.Width;
        _value = Spec.Type switch
        {
            FeatureType.Float => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _floats.AsMemory(0, length), shape),
            FeatureType.Double => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _doubles.AsMemory(0, length), shape),
            FeatureType.Int64 => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _longs.AsMemory(0, length), shape),
            FeatureType.Int32 => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _ints.AsMemory(0, length), shape),
            _ => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _bools.AsMemory(0, length), shape),
        };
        _valueRows = rows;
        return _value;
    }

    public void Dispose() => _value?.Dispose();

    private OrtValue StringTensor(long[] shape, int length)
    {
        // String tensors live in native memory: they are filled anew for every call.
        var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
        for (var i = 0; i < length; i++)
        {
            value.StringTensorSetElementAt(_strings![i].AsSpan(), i);
        }

        return value;
    }

    private long[] Shape(int rows)
    {
        var shape = (long[])Spec.Shape.Clone();
        if (shape.Length > 0 && shape[0] < 0)
        {
            shape[0] = rows;
        }

        return shape;
    }

    private string TypeName => $"input '{Spec.Name}' ({Spec.Type.ToString().ToLowerInvariant()})";

    private static string Shorten(string value) => value.Length <= 40 ? value : value[..40] + "…";
}

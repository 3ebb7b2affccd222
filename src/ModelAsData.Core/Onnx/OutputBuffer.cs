using Microsoft.ML.OnnxRuntime;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// The rows of one model output after a call, as managed numbers or strings. When every output's size is known in
/// advance ONNX Runtime writes straight into these arrays; otherwise its results are copied in.
/// </summary>
internal sealed class OutputBuffer : IDisposable
{
    private OrtValue? _value;
    private int _valueRows;

    public OutputBuffer(OutputSpec spec, int capacity)
    {
        Spec = spec;
        Width = spec.Width ?? 0;
        if (spec.Width is { } width)
        {
            Allocate(capacity * width);
        }
    }

    public OutputSpec Spec { get; }

    /// <summary>Values per row in the last call.</summary>
    public int Width { get; private set; }

    public float[] Floats { get; private set; } = [];

    public double[] Doubles { get; private set; } = [];

    public long[] Longs { get; private set; } = [];

    public int[] Ints { get; private set; } = [];

    public bool[] Bools { get; private set; } = [];

    public string[] Strings { get; private set; } = [];

    /// <summary>Whether ONNX Runtime can write this output into managed memory given in advance.</summary>
    public bool CanPreallocate => Spec.Width is not null && Spec.Type != FeatureType.String;

    public double GetDouble(int index) => Spec.Type switch
    {
        FeatureType.Float => Floats[index],
        FeatureType.Double => Doubles[index],
        FeatureType.Int64 => Longs[index],
        FeatureType.Int32 => Ints[index],
        FeatureType.Bool => Bools[index] ? 1 : 0,
        _ => throw new InvalidOperationException($"Output '{Spec.Name}' holds strings, not numbers."),
    };

    /// <summary>An ONNX Runtime value over this buffer's memory for <paramref name="rows"/> rows.</summary>
    public OrtValue ToOrtValue(int rows)
    {
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

    /// <summary>Copies an output ONNX Runtime allocated.</summary>
    public void CopyFrom(OrtValue value, int rows)
    {
        var count = checked((int)value.GetTensorTypeAndShape().ElementCount);
        Width = rows == 0 ? 0 : count / rows;
        if (Spec.Type == FeatureType.String)
        {
            Strings = value.GetStringTensorAsArray();
            return;
        }

        if (LengthOf() < count)
        {
            Allocate(count);
        }

        switch (Spec.Type)
        {
            case FeatureType.Float: value.GetTensorDataAsSpan<float>().CopyTo(Floats); break;
            case FeatureType.Double: value.GetTensorDataAsSpan<double>().CopyTo(Doubles); break;
            case FeatureType.Int64: value.GetTensorDataAsSpan<long>().CopyTo(Longs); break;
            case FeatureType.Int32: value.GetTensorDataAsSpan<int>().CopyTo(Ints); break;
            case FeatureType.Bool: value.GetTensorDataAsSpan<bool>().CopyTo(Bools); break;
        }
    }

    public void Dispose() => _value?.Dispose();

    private int LengthOf() => Spec.Type switch
    {
        FeatureType.Float => Floats.Length,
        FeatureType.Double => Doubles.Length,
        FeatureType.Int64 => Longs.Length,
        FeatureType.Int32 => Ints.Length,
        FeatureType.Bool => Bools.Length,
        _ => Strings.Length,
    };

    private void Allocate(int length)
    {
        _value?.Dispose();
        _value = null;
        switch (Spec.Type)
        {
            case FeatureType.Float: Floats = new float[length]; break;
            case FeatureType.Double: Doubles = new double[length]; break;
            case FeatureType.Int64: Longs = new long[length]; break;
            case FeatureType.Int32: Ints = new int[length]; break;
            case FeatureType.Bool: Bools = new bool[length]; break;
            case FeatureType.String: Strings = new string[length]; break;
        }
    }
}

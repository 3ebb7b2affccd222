using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace ModelAsData.Core.Onnx;

/// <summary>A row's whole tensor into the buffer, and the buffer's rows (all, or a group) out to ONNX Runtime.</summary>
internal sealed partial class InputBuffer
{
    /// <summary>
    /// Copies an array's elements (row-major, any rank) into the buffer at <paramref name="start"/>, converting each
    /// as the scalar setters do; returns why an element cannot feed this input (naming its index), or null.
    /// </summary>
    public string? CopyFrom(int start, Array values)
    {
        switch (values)
        {
            case float[] same when Spec.Type == FeatureType.Float: same.CopyTo(_floats!, start); return null;
            case byte[] same when Spec.Type == FeatureType.Uint8: same.CopyTo(_raw!, start); return null;
        }

        var type = values.GetType().GetElementType();
        return type == typeof(float) ? Each(start, Flat<float>(values), static (b, i, v) => b.Set(i, (double)v))
            : type == typeof(double) ? Each(start, Flat<double>(values), static (b, i, v) => b.Set(i, v))
            : type == typeof(long) ? Each(start, Flat<long>(values), static (b, i, v) => b.Set(i, v))
            : type == typeof(int) ? Each(start, Flat<int>(values), static (b, i, v) => b.Set(i, (long)v))
            : type == typeof(short) ? Each(start, Flat<short>(values), static (b, i, v) => b.Set(i, (long)v))
            : type == typeof(byte) ? Each(start, Flat<byte>(values), static (b, i, v) => b.Set(i, (long)v))
            : type == typeof(bool) ? Each(start, Flat<bool>(values), static (b, i, v) => b.Set(i, v))
            : type == typeof(decimal) ? Each(start, Flat<decimal>(values), static (b, i, v) => b.Set(i, v))
            : type == typeof(ulong) ? Each(start, Flat<ulong>(values), static (b, i, v) => b.Set(i, (decimal)v))
            : type is not null && !type.IsValueType ? Each(start, FlatObjects(values), static (b, i, v) => b.SetObject(i, v))
            : $"an array of {type?.Name} cannot feed {TypeName}";
    }

    private string? Each<T>(int start, ReadOnlySpan<T> values, Func<InputBuffer, int, T, string?> set)
    {
        for (var i = 0; i < values.Length; i++)
        {
            if (set(this, start + i, values[i]) is { } error)
            {
                // A NULL element in the words PostgreSQL's arrays get (PostgresArrays, FeatureSlots): one rule, one message.
                return values[i] is null
                    ? $"the array holds a NULL at element {i.ToString(CultureInfo.InvariantCulture)}, which cannot feed input '{Spec.Name}'"
                    : $"element {i.ToString(CultureInfo.InvariantCulture)}: {error}";
            }
        }

        return null;
    }

    /// <summary>
    /// The rows of one group as an ONNX Runtime value of <paramref name="shape"/>, copied out of the buffer. The
    /// caller disposes the value, then frees <paramref name="pin"/> when it was allocated.
    /// </summary>
    public OrtValue Gather(ReadOnlySpan<int> rows, long[] shape, ref GCHandle pin)
    {
        var length = 0;
        foreach (var row in rows)
        {
            length += RowLength(row);
        }

        var group = new InputBuffer(Spec with { Shape = shape, Width = length }, 1);
        var at = 0;
        foreach (var row in rows)
        {
            var count = RowLength(row);
            CopyRange(this, RowStart(row), group, at, count);
            at += count;
        }

        return group._strings is not null ? StringTensor(shape, group._strings, length) : Over(group, 0, length, shape, ref pin);
    }

    private int RowLength(int row) => IsRagged ? _rowStart[row + 1] - _rowStart[row] : Spec.Width;

    private static void CopyRange(InputBuffer from, int start, InputBuffer to, int at, int count)
    {
        switch (from.Spec.Type)
        {
            case FeatureType.Float: Array.Copy(from._floats!, start, to._floats!, at, count); break;
            case FeatureType.Double: Array.Copy(from._doubles!, start, to._doubles!, at, count); break;
            case FeatureType.Int64: Array.Copy(from._longs!, start, to._longs!, at, count); break;
            case FeatureType.Int32: Array.Copy(from._ints!, start, to._ints!, at, count); break;
            case FeatureType.String: Array.Copy(from._strings!, start, to._strings!, at, count); break;
            case FeatureType.Bool: Array.Copy(from._bools!, start, to._bools!, at, count); break;
            default: Array.Copy(from._raw!, start * from._size, to._raw!, at * from._size, count * from._size); break;
        }
    }

    /// <summary>An ONNX Runtime value over <paramref name="length"/> values of a buffer from <paramref name="start"/>: no copy.</summary>
    private static OrtValue Over(InputBuffer buffer, int start, int length, long[] shape, ref GCHandle pin)
    {
        switch (buffer.Spec.Type)
        {
            case FeatureType.Float: return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer._floats.AsMemory(start, length), shape);
            case FeatureType.Double: return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer._doubles.AsMemory(start, length), shape);
            case FeatureType.Int64: return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer._longs.AsMemory(start, length), shape);
            case FeatureType.Int32: return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer._ints.AsMemory(start, length), shape);
            case FeatureType.Bool: return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer._bools.AsMemory(start, length), shape);
            default:
                pin = GCHandle.Alloc(buffer._raw!, GCHandleType.Pinned);
                return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, FeatureTypes.ToOnnxRuntime(buffer.Spec.Type), shape,
                    pin.AddrOfPinnedObject() + (start * buffer._size), (long)length * buffer._size);
        }
    }

    private static OrtValue StringTensor(long[] shape, string[] strings, int length)
    {
        // String tensors live in native memory: they are filled anew for every call.
        var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
        for (var i = 0; i < length; i++)
        {
            value.StringTensorSetElementAt(strings[i].AsSpan(), i);
        }

        return value;
    }

    private string? SetObject(int index, object? value) => value switch
    {
        null => $"null cannot feed {TypeName}",
        double d => Set(index, d),
        float f => Set(index, (double)f),
        long l => Set(index, l),
        int i => Set(index, (long)i),
        short s => Set(index, (long)s),
        byte b => Set(index, (long)b),
        decimal m => Set(index, m),
        ulong u => Set(index, (decimal)u),
        string t => Set(index, t),
        bool flag => Set(index, flag),
        _ => $"a {value.GetType().Name} value cannot feed {TypeName}",
    };

    /// <summary>The elements of an array of any rank, in row-major order, without a copy.</summary>
    private static ReadOnlySpan<T> Flat<T>(Array values) where T : unmanaged =>
        MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<byte, T>(ref MemoryMarshal.GetArrayDataReference(values)), values.Length);

    private static ReadOnlySpan<object?> FlatObjects(Array values) =>
        MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<byte, object?>(ref MemoryMarshal.GetArrayDataReference(values)), values.Length);
}

using System.Globalization;

namespace ModelAsData.Core.Onnx.Tensors;

/// <summary>
/// A named tensor as ONNX Runtime takes and makes it: element type, shape, and elements in row-major order. Numbers
/// are kept as ONNX Runtime lays them out (little-endian bytes), so float16, bfloat16 and 64-bit integers never pass
/// through another type on their way in or out; strings are kept as strings. Owns its arrays; not to be changed
/// after it is made.
/// </summary>
public sealed class Tensor
{
    private Tensor(string name, FeatureType type, long[] shape, byte[]? bytes, string[]? strings)
    {
        Name = name;
        Type = type;
        Shape = shape;
        ElementCount = ElementsOf(shape);
        Bytes = bytes ?? [];
        Strings = strings;
        var expected = type == FeatureType.String ? ElementCount : ElementCount * FeatureTypes.Size(type);
        var actual = type == FeatureType.String ? Strings?.LongLength ?? 0 : Bytes.LongLength;
        if (expected != actual)
        {
            throw new ArgumentException($"Tensor '{name}' of shape {Describe(shape)} holds {ElementCount} {FeatureTypes.Name(type)} element(s), not {actual} {(type == FeatureType.String ? "strings" : "bytes")}.");
        }
    }

    public string Name { get; }

    public FeatureType Type { get; }

    /// <summary>Dimensions, every one known (≥ 0).</summary>
    public IReadOnlyList<long> Shape { get; }

    public long ElementCount { get; }

    /// <summary>The elements' little-endian bytes (empty for a string tensor).</summary>
    public byte[] Bytes { get; }

    /// <summary>The elements of a string tensor; null for numbers and booleans.</summary>
    public string[]? Strings { get; }

    /// <summary>A tensor of numbers or booleans over its elements' bytes (taken, not copied).</summary>
    public static Tensor OfBytes(string name, FeatureType type, long[] shape, byte[] bytes) =>
        type == FeatureType.String ? throw new ArgumentException("A string tensor holds strings: use OfStrings.", nameof(type)) : new(name, type, shape, bytes, null);

    public static Tensor OfStrings(string name, long[] shape, string[] strings) => new(name, FeatureType.String, shape, null, strings);

    /// <summary>The product of the dimensions; throws for a negative (unknown) one.</summary>
    public static long ElementsOf(IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"Shape {Describe(shape)} has an unknown dimension.", nameof(shape));
            }

            count = checked(count * d);
        }

        return count;
    }

    /// <summary>Reads as <c>[2, 3, 4]</c>, <c>[-1, 3]</c> for a dynamic first dimension.</summary>
    public static string Describe(IReadOnlyList<long> shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";

    public override string ToString() => $"{Name} {FeatureTypes.Name(Type)}{Describe(Shape)}";
}

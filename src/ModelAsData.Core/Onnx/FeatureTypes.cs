using Microsoft.ML.OnnxRuntime.Tensors;

namespace ModelAsData.Core.Onnx;

/// <summary>What each <see cref="FeatureType"/> is to ONNX Runtime: its element type, its size, its name.</summary>
public static class FeatureTypes
{
    /// <summary>Whether rows of a table feed and hold it today (the scorer's buffers have these six).</summary>
    public static bool IsTabular(FeatureType type) => type is FeatureType.Float or FeatureType.Double or FeatureType.Int64
        or FeatureType.Int32 or FeatureType.String or FeatureType.Bool;

    /// <summary>
    /// The array a table's rows keep values of this type in, widened without loss: float16 and bfloat16 as float, the
    /// small and unsigned integers (up to uint32) as int64. Uint64 stays itself (int64 does not hold it): its outputs
    /// are kept as ulong and decode into <see cref="ColumnType.Uint64"/> columns.
    /// </summary>
    public static FeatureType Storage(FeatureType type) => type switch
    {
        FeatureType.Float16 or FeatureType.Bfloat16 => FeatureType.Float,
        FeatureType.Int8 or FeatureType.Int16 or FeatureType.Uint8 or FeatureType.Uint16 or FeatureType.Uint32 => FeatureType.Int64,
        _ => type,
    };

    /// <summary>The name signatures and messages use: <c>float</c>, <c>uint8</c>, <c>bfloat16</c>.</summary>
    public static string Name(FeatureType type) => type.ToString().ToLowerInvariant();

    /// <summary>Bytes per element as ONNX Runtime lays a tensor out; 0 for strings, which are not laid out in bytes.</summary>
    public static int Size(FeatureType type) => type switch
    {
        FeatureType.Double or FeatureType.Int64 or FeatureType.Uint64 => 8,
        FeatureType.Float or FeatureType.Int32 or FeatureType.Uint32 => 4,
        FeatureType.Float16 or FeatureType.Bfloat16 or FeatureType.Int16 or FeatureType.Uint16 => 2,
        FeatureType.Int8 or FeatureType.Uint8 or FeatureType.Bool => 1,
        _ => 0,
    };

    public static TensorElementType ToOnnxRuntime(FeatureType type) => type switch
    {
        FeatureType.Float => TensorElementType.Float,
        FeatureType.Double => TensorElementType.Double,
        FeatureType.Int64 => TensorElementType.Int64,
        FeatureType.Int32 => TensorElementType.Int32,
        FeatureType.String => TensorElementType.String,
        FeatureType.Bool => TensorElementType.Bool,
        FeatureType.Float16 => TensorElementType.Float16,
        FeatureType.Bfloat16 => TensorElementType.BFloat16,
        FeatureType.Int8 => TensorElementType.Int8,
        FeatureType.Int16 => TensorElementType.Int16,
        FeatureType.Uint8 => TensorElementType.UInt8,
        FeatureType.Uint16 => TensorElementType.UInt16,
        FeatureType.Uint32 => TensorElementType.UInt32,
        FeatureType.Uint64 => TensorElementType.UInt64,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>The feature type of an ONNX Runtime element type; null for those ModelAsData does not carry (complex, float8, int4).</summary>
    public static FeatureType? FromOnnxRuntime(TensorElementType type) => type switch
    {
        TensorElementType.Float => FeatureType.Float,
        TensorElementType.Double => FeatureType.Double,
        TensorElementType.Int64 => FeatureType.Int64,
        TensorElementType.Int32 => FeatureType.Int32,
        TensorElementType.String => FeatureType.String,
        TensorElementType.Bool => FeatureType.Bool,
        TensorElementType.Float16 => FeatureType.Float16,
        TensorElementType.BFloat16 => FeatureType.Bfloat16,
        TensorElementType.Int8 => FeatureType.Int8,
        TensorElementType.Int16 => FeatureType.Int16,
        TensorElementType.UInt8 => FeatureType.Uint8,
        TensorElementType.UInt16 => FeatureType.Uint16,
        TensorElementType.UInt32 => FeatureType.Uint32,
        TensorElementType.UInt64 => FeatureType.Uint64,
        _ => null,
    };
}

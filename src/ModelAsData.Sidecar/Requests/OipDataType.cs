using ModelAsData.Core.Onnx;

namespace ModelAsData.Sidecar.Requests;

/// <summary>The Open Inference Protocol's tensor datatypes (<c>FP32</c>, <c>UINT8</c>, <c>BYTES</c>…), one per element type.</summary>
internal static class OipDataType
{
    private static readonly (FeatureType Type, string Name)[] s_names =
    [
        (FeatureType.Bool, "BOOL"),
        (FeatureType.Uint8, "UINT8"),
        (FeatureType.Uint16, "UINT16"),
        (FeatureType.Uint32, "UINT32"),
        (FeatureType.Uint64, "UINT64"),
        (FeatureType.Int8, "INT8"),
        (FeatureType.Int16, "INT16"),
        (FeatureType.Int32, "INT32"),
        (FeatureType.Int64, "INT64"),
        (FeatureType.Float16, "FP16"),
        (FeatureType.Float, "FP32"),
        (FeatureType.Double, "FP64"),
        (FeatureType.Bfloat16, "BF16"),
        (FeatureType.String, "BYTES"),
    ];

    public static string Of(FeatureType type) => s_names.First(n => n.Type == type).Name;

    /// <summary>The element type a datatype names (case-sensitive, as the protocol's strings are); null for none.</summary>
    public static FeatureType? Parse(string name)
    {
        foreach (var (type, known) in s_names)
        {
            if (known == name)
            {
                return type;
            }
        }

        return null;
    }

    public static string Known => string.Join(", ", s_names.Select(n => n.Name));
}

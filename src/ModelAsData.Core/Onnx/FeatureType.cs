namespace ModelAsData.Core.Onnx;

/// <summary>The element types a model input or output may have.</summary>
public enum FeatureType
{
    Float,
    Double,
    Int64,
    Int32,
    String,
    Bool,
}

namespace ModelAsData.Core.Onnx;

/// <summary>
/// The element types a model input or output may have: every tensor element type ONNX Runtime runs on CPU. Rows of a
/// table feed and hold only the first six (<see cref="FeatureTypes.IsTabular"/>); the rest travel as tensors
/// (<see cref="Tensors.Tensor"/>) over the Open Inference Protocol. Stored in signatures by their snake_case names
/// (<c>float</c>, <c>uint8</c>, <c>bfloat16</c>), so the order of the members never matters.
/// </summary>
public enum FeatureType
{
    Float,
    Double,
    Int64,
    Int32,
    String,
    Bool,
    Float16,
    Bfloat16,
    Int8,
    Int16,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
}

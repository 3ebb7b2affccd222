namespace ModelAsData.Core.Onnx;

/// <summary>
/// One model output. <see cref="Width"/> is values per row, or null when a dimension after the batch is dynamic.
/// <see cref="Classes"/> holds the class labels of a probability output whose scikit-learn ZipMap was removed at load,
/// in column order.
/// </summary>
public sealed record OutputSpec(string Name, FeatureType Type, long[] Shape, int? Width, IReadOnlyList<string>? Classes);

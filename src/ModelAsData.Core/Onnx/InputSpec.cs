namespace ModelAsData.Core.Onnx;

/// <summary>
/// One model input as ONNX Runtime reads it. <see cref="Width"/> is how many feature values one row puts in it: the
/// product of its dimensions after the batch dimension (1 for <c>[N]</c> or <c>[N,1]</c>, 4 for <c>[N,4]</c>).
/// </summary>
/// <param name="Name">The input's name in the graph.</param>
/// <param name="Type">The tensor's element type.</param>
/// <param name="Shape">Dimensions as ONNX Runtime reports them; -1 is dynamic.</param>
/// <param name="Width">Feature values per row.</param>
public sealed record InputSpec(string Name, FeatureType Type, long[] Shape, int Width);

using System.Text.Json.Serialization;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// One model input as ONNX Runtime reads it. <see cref="Width"/> is how many feature values one row puts in it: the
/// product of its dimensions after the batch dimension (1 for <c>[N]</c> or <c>[N,1]</c>, 4 for <c>[N,4]</c>), or 0
/// when one of them is dynamic (<see cref="IsRagged"/>: each row brings its own size, as token ids <c>[N, T]</c> do).
/// </summary>
/// <param name="Name">The input's name in the graph.</param>
/// <param name="Type">The tensor's element type.</param>
/// <param name="Shape">Dimensions as ONNX Runtime reports them; -1 is dynamic.</param>
/// <param name="Width">Feature values per row; 0 when a dimension after the batch is dynamic.</param>
public sealed record InputSpec(string Name, FeatureType Type, long[] Shape, int Width)
{
    /// <summary>
    /// Whether the first dimension counts rows: dynamic or 1. A fixed first dimension other than 1 is not a batch:
    /// the whole tensor is one row (and the model scores one row per call).
    /// </summary>
    [JsonIgnore]
    public bool IsBatched => Shape.Length > 0 && Shape[0] is < 0 or 1;

    /// <summary>The dimensions of one row's tensor: those after the batch dimension, or the whole shape when there is none.</summary>
    [JsonIgnore]
    public long[] RowShape => IsBatched ? Shape[1..] : Shape;

    /// <summary>Whether rows may differ in size: a dimension of <see cref="RowShape"/> is dynamic.</summary>
    [JsonIgnore]
    public bool IsRagged => RowShape.Any(d => d < 0);
}

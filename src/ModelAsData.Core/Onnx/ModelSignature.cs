using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// A model's inputs and outputs as ONNX Runtime reads them, and the columns its predictions decode into.
/// Stored with each version in the registry as JSON.
/// </summary>
public sealed record ModelSignature(IReadOnlyList<InputSpec> Inputs, IReadOnlyList<OutputSpec> Outputs, IReadOnlyList<OutputColumn> Columns)
{
    /// <summary>
    /// Why rows of a table cannot feed this model or hold its outputs; null when they can. Such a model has no
    /// <see cref="Columns"/> and scores as tensors (<see cref="OnnxModel.Run"/>, the Open Inference Protocol endpoint).
    /// Today every tensor model decodes into columns, so only signatures stored by an older release (uint64 outputs,
    /// before <see cref="ColumnType.Uint64"/>) carry it: such a version binds to a table once pushed again.
    /// </summary>
    public string? TensorOnly { get; init; }

    /// <summary>The JSON form signatures and columns are stored in: snake_case names and enums.</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Feature values one row takes over all inputs.</summary>
    [JsonIgnore]
    public int FeatureCount => Inputs.Sum(i => i.Width);

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static ModelSignature FromJson(string json) =>
        JsonSerializer.Deserialize<ModelSignature>(json, JsonOptions)
        ?? throw new InvalidDataException("A stored model signature is empty.");

    /// <summary>Reads as <c>float_input float[-1,4]</c>: for messages and listings.</summary>
    public static string Describe(InputSpec input) =>
        $"{input.Name} {input.Type.ToString().ToLowerInvariant()}[{string.Join(',', input.Shape)}]";

    /// <summary>One line listing every input, for error messages.</summary>
    public string DescribeInputs() => string.Join(", ", Inputs.Select(Describe));

    /// <summary>
    /// The column that holds one class's probability: matched by class label (<c>'virginica'</c>, <c>'1'</c>), or for
    /// a probability output without labels, by index.
    /// </summary>
    public int FindProbabilityColumn(string className, string model)
    {
        for (var c = 0; c < Columns.Count; c++)
        {
            if (Columns[c].Class == className)
            {
                return c;
            }
        }

        var labelled = Columns.Where(c => c.Class is not null).Select(c => c.Class!).ToList();
        if (labelled.Count == 0 && int.TryParse(className, out var index))
        {
            for (var c = 0; c < Columns.Count; c++)
            {
                var output = Outputs[Columns[c].Output];
                if (Columns[c].Offset == index && output.Width > 1 && output.Name.Contains("prob", StringComparison.OrdinalIgnoreCase))
                {
                    return c;
                }
            }
        }

        var known = labelled.Count > 0 ? $"its classes are {string.Join(", ", labelled.Select(l => $"'{l}'"))}" : "it has no probability output";
        throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{model}' has no class '{className}': {known}.");
    }
}

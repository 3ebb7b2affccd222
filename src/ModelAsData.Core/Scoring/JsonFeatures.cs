using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Core.Scoring;

/// <summary>
/// Features given as data, as <c>mad.predict</c> and <c>mad predict --json</c> take them: keys are model input names,
/// values a scalar or an array of the input's width: <c>{"float_input": [5.1, 3.5, 1.4, 0.2]}</c>.
/// </summary>
public static class JsonFeatures
{
    /// <summary>Writes one row into the scorer; throws <see cref="ErrorCode.FeatureMismatch"/> naming the input and what it takes.</summary>
    public static void AddRow(ModelScorer scorer, JsonObject features, string model)
    {
        var signature = scorer.Model.Signature;
        var unknown = features.Select(p => p.Key).Where(k => signature.Inputs.All(i => i.Name != k)).ToList();
        if (unknown.Count > 0)
        {
            throw Mismatch(model, signature, $"it has no input {string.Join(", ", unknown.Select(u => $"'{u}'"))}");
        }

        scorer.BeginRow();
        var slot = 0;
        foreach (var input in signature.Inputs)
        {
            var values = features[input.Name] switch
            {
                null when !features.ContainsKey(input.Name) => throw Cancel(scorer, Mismatch(model, signature, $"input '{input.Name}' is missing")),
                JsonArray array => array.ToList(),
                var scalar => [scalar],
            };
            if (values.Count != input.Width)
            {
                throw Cancel(scorer, Mismatch(model, signature, $"input '{input.Name}' takes {input.Width} value(s); {values.Count} given"));
            }

            foreach (var value in values)
            {
                if (scorer.Set(slot, ToClr(value)) is { } error)
                {
                    throw Cancel(scorer, new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{model}': {error}."));
                }

                slot++;
            }
        }

        scorer.EndRow();
    }

    /// <summary>Parses features given as JSON text.</summary>
    public static JsonObject Parse(string json)
    {
        try
        {
            return JsonNode.Parse(json) as JsonObject
                ?? throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Features must be a JSON object of input names to values, e.g. {{\"float_input\": [5.1, 3.5, 1.4, 0.2]}}; got {json}.");
        }
        catch (JsonException e)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Features are not valid JSON ({e.Message}).", e);
        }
    }

    /// <summary>A JSON scalar as the CLR value a scorer slot takes (string, bool, long or double); anything else as its JSON text.</summary>
    public static object? ToClr(JsonNode? node) => node switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        JsonValue value when value.GetValueKind() is JsonValueKind.True or JsonValueKind.False => value.GetValue<bool>(),
        JsonValue value when value.GetValueKind() == JsonValueKind.Number =>
            value.TryGetValue<long>(out var whole) ? whole : value.GetValue<double>(),
        _ => node.ToJsonString(),
    };

    private static ModelAsDataException Mismatch(string model, ModelSignature signature, string what) =>
        new(ErrorCode.FeatureMismatch, $"Features do not fit model '{model}': {what}. It takes: {signature.DescribeInputs()}.");

    private static ModelAsDataException Cancel(ModelScorer scorer, ModelAsDataException exception)
    {
        scorer.CancelRow();
        return exception;
    }
}

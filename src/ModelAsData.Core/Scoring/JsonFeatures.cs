using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Core.Scoring;

/// <summary>
/// Features given as data, as <c>mad.predict</c> and <c>mad predict --json</c> take them: keys are model input names,
/// values a scalar or an array of the input's width: <c>{"float_input": [5.1, 3.5, 1.4, 0.2]}</c>, or one row's
/// tensor as nested arrays (<c>{"image": [[0, 12, ...], ...]}</c>, <c>{"ids": [101, 2023, 102]}</c> for a dynamic
/// length), fed as a table's array column feeds it (<see cref="ModelScorer.SetTensor"/>).
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
        for (var index = 0; index < signature.Inputs.Count; index++)
        {
            var input = signature.Inputs[index];
            if (features[input.Name] is JsonArray tensor && (input.IsRagged || tensor.Any(e => e is JsonArray)))
            {
                var (flat, dims) = Flatten(tensor, input.Name, model, signature, scorer);
                if (scorer.SetTensor(index, flat, dims) is { } error)
                {
                    throw Cancel(scorer, new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{model}': {error}."));
                }

                slot += input.Width; // its slots, set whole
                continue;
            }

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

    /// <summary>Nested JSON arrays as their elements (CLR scalars, row-major) and dimensions; ragged nesting is refused.</summary>
    private static (object?[] Values, long[] Dims) Flatten(JsonArray tensor, string input, string model, ModelSignature signature, ModelScorer scorer) =>
        TryFlatten(tensor, out var values, out var dims) is { } why
            ? throw Cancel(scorer, Mismatch(model, signature, $"input '{input}' {why}"))
            : (values, dims);

    /// <summary>
    /// Sets a whole input of the scorer's open row from a row's tensor written as JSON (nested arrays, or a flat
    /// array), as the embedded store keeps tensors in TEXT columns; returns why it cannot feed the input, or null.
    /// </summary>
    public static string? SetTensor(ModelScorer scorer, int input, string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            return $"the text is not a JSON array ({e.Message})";
        }

        if (node is not JsonArray array)
        {
            return $"input '{scorer.Model.Signature.Inputs[input].Name}' takes an array per row; the text is {Shorten(json)}";
        }

        return TryFlatten(array, out var values, out var dims) is { } why
            ? $"input '{scorer.Model.Signature.Inputs[input].Name}' {why}"
            : scorer.SetTensor(input, values, dims);
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "…";

    private static string? TryFlatten(JsonArray tensor, out object?[] flat, out long[] shape)
    {
        var dims = new List<long>();
        for (JsonNode? node = tensor; node is JsonArray array; node = array.Count > 0 ? array[0] : null)
        {
            dims.Add(array.Count);
        }

        var values = new List<object?>();
        string? Walk(JsonNode? node, int depth)
        {
            if (depth == dims.Count)
            {
                if (node is JsonArray)
                {
                    return "is not a rectangular array: it nests deeper in places than at its first element";
                }

                values.Add(ToClr(node));
                return null;
            }

            if (node is not JsonArray array || array.Count != dims[depth])
            {
                return $"is not a rectangular array: dimension {depth} has {dims[depth]} element(s) at its start and another size elsewhere";
            }

            foreach (var element in array)
            {
                if (Walk(element, depth + 1) is { } why)
                {
                    return why;
                }
            }

            return null;
        }

        var error = Walk(tensor, 0);
        flat = values.ToArray();
        shape = dims.ToArray();
        return error;
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

    /// <summary>A JSON scalar as the CLR value a scorer slot takes (string, bool, long, ulong or double); anything else as its JSON text.</summary>
    public static object? ToClr(JsonNode? node) => node switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        JsonValue value when value.GetValueKind() is JsonValueKind.True or JsonValueKind.False => value.GetValue<bool>(),
        JsonValue value when value.GetValueKind() == JsonValueKind.Number =>
            // ulong between long and double: a uint64 past 2^63 stays exact.
            value.TryGetValue<long>(out var whole) ? whole : value.TryGetValue<ulong>(out var big) ? big : value.TryGetValue<double>(out var real) ? real : Number(value),
        _ => node.ToJsonString(),
    };

    /// <summary>A number made in code (an int, a decimal), through its JSON text.</summary>
    private static object Number(JsonValue value)
    {
        var element = JsonSerializer.SerializeToElement(value);
        return element.TryGetInt64(out var whole) ? whole : element.GetDouble();
    }

    private static ModelAsDataException Mismatch(string model, ModelSignature signature, string what) =>
        new(ErrorCode.FeatureMismatch, $"Features do not fit model '{model}': {what}. It takes: {signature.DescribeInputs()}.");

    private static ModelAsDataException Cancel(ModelScorer scorer, ModelAsDataException exception)
    {
        scorer.CancelRow();
        return exception;
    }
}

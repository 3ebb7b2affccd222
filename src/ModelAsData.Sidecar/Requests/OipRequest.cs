using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Onnx.Tensors;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// An Open Inference Protocol v2 inference request read into tensors: <c>inputs</c> by the model's own names, each
/// with its <c>shape</c>, <c>datatype</c> and <c>data</c> (row-major, flat or nested); the requested <c>outputs</c>
/// (all when absent). The binary tensor data extension is not implemented: an input that says it travels as binary
/// (<c>binary_data_size</c>) is refused, and outputs asked for as binary are answered as JSON, which clients read
/// whenever an output carries no <c>binary_data_size</c>.
/// </summary>
internal sealed record OipRequest(IReadOnlyList<Tensor> Inputs, IReadOnlyList<IReadOnlyList<JsonNode?>> Data, IReadOnlyList<string>? Outputs)
{
    public static OipRequest Read(ModelSignature signature, JsonObject body, string reference)
    {
        var inputs = body["inputs"] as JsonArray ?? [];
        if (inputs.Count == 0 && signature.Inputs.Count > 0)
        {
            throw Bad($"The request needs \"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]; model '{reference}' takes {Describe(signature)}.");
        }

        var tensors = new List<Tensor>(inputs.Count);
        var data = new List<IReadOnlyList<JsonNode?>>(inputs.Count);
        foreach (var input in inputs)
        {
            if (input is not JsonObject tensor || tensor["name"] is not JsonValue nameNode || !nameNode.TryGetValue<string>(out var name))
            {
                throw Bad("Every input needs a \"name\": the name of one of the model's inputs.");
            }

            var spec = signature.Inputs.FirstOrDefault(i => i.Name == name)
                ?? throw Bad($"Model '{reference}' has no input '{name}'; it takes {Describe(signature)}.");
            var shape = Shape(tensor, spec);
            var type = DataType(tensor, spec, reference);
            if (tensor["parameters"] is JsonObject parameters && parameters.ContainsKey("binary_data_size"))
            {
                throw Bad($"Input '{name}' is sent as binary data; this server does not implement the binary tensor data extension: send \"data\" as JSON.");
            }

            var values = new List<JsonNode?>();
            Flatten(tensor["data"] ?? throw Bad($"Input '{name}' needs \"data\": its {Describe(shape)} elements in row-major order."), values);
            var count = Tensor.ElementsOf(shape);
            if (values.Count != count)
            {
                throw Bad($"Input '{name}' has shape {Describe(shape)}, so {count} element(s), but {values.Count} were given.");
            }

            tensors.Add(TensorJson.Read(name, type, shape, values.Select(Element).ToList()));
            data.Add(values);
        }

        return new OipRequest(tensors, data, RequestedOutputs(signature, body, reference));
    }

    public static ModelAsDataException Bad(string message) => new(ErrorCode.FeatureMismatch, message);

    /// <summary>The inputs as metadata lists them: <c>float_input FP32[-1, 4]</c>.</summary>
    public static string Describe(ModelSignature signature) =>
        string.Join(", ", signature.Inputs.Select(i => $"{i.Name} {OipDataType.Of(i.Type)}{Describe(i.Shape)}"));

    private static string Describe(IReadOnlyList<long> shape) => Tensor.Describe(shape);

    private static long[] Shape(JsonObject tensor, InputSpec spec)
    {
        var example = Describe(spec.Shape.Select(d => d < 0 ? 1 : d).ToArray());
        if (tensor["shape"] is not JsonArray shape)
        {
            throw Bad($"Input '{spec.Name}' needs a \"shape\", e.g. {example} (the model takes {Describe(spec.Shape)}; -1: any size).");
        }

        var dims = new long[shape.Count];
        for (var d = 0; d < dims.Length; d++)
        {
            if (shape[d] is not JsonValue value || !value.TryGetValue<long>(out dims[d]) || dims[d] < 0)
            {
                throw Bad($"Input '{spec.Name}' has shape {shape.ToJsonString()}; a shape is a list of sizes ≥ 0, e.g. {example}.");
            }
        }

        return dims;
    }

    private static FeatureType DataType(JsonObject tensor, InputSpec spec, string reference)
    {
        var wanted = OipDataType.Of(spec.Type);
        if (tensor["datatype"] is not JsonValue value || !value.TryGetValue<string>(out var name))
        {
            throw Bad($"Input '{spec.Name}' needs a \"datatype\": \"{wanted}\".");
        }

        var type = OipDataType.Parse(name)
            ?? throw Bad($"Input '{spec.Name}' has datatype '{name}', which the protocol does not define; datatypes: {OipDataType.Known}.");
        if (type != spec.Type)
        {
            throw Bad($"Input '{spec.Name}' is {name}; model '{reference}' takes {wanted} (the datatype of {spec.Name} {wanted}{Describe(spec.Shape)}).");
        }

        return type;
    }

    private static IReadOnlyList<string>? RequestedOutputs(ModelSignature signature, JsonObject body, string reference)
    {
        if (body["outputs"] is not JsonArray outputs)
        {
            return null;
        }

        var names = new List<string>(outputs.Count);
        foreach (var output in outputs)
        {
            if (output is not JsonObject requested || requested["name"] is not JsonValue nameNode || !nameNode.TryGetValue<string>(out var name))
            {
                throw Bad("Every requested output needs a \"name\".");
            }

            if (!signature.Outputs.Any(o => o.Name == name))
            {
                throw Bad($"Model '{reference}' has no output '{name}'; its outputs: {string.Join(", ", signature.Outputs.Select(o => $"'{o.Name}'"))}.");
            }

            if (!names.Contains(name))
            {
                names.Add(name);
            }
        }

        return names.Count == 0 ? null : names;
    }

    private static JsonElement Element(JsonNode? node) => node switch
    {
        JsonValue value when value.TryGetValue<JsonElement>(out var element) => element,
        null => JsonDocument.Parse("null").RootElement,
        _ => JsonSerializer.SerializeToElement(node),
    };

    private static void Flatten(JsonNode node, List<JsonNode?> into)
    {
        if (node is not JsonArray array)
        {
            into.Add(node);
            return;
        }

        foreach (var item in array)
        {
            if (item is JsonArray)
            {
                Flatten(item, into);
            }
            else
            {
                into.Add(item);
            }
        }
    }
}

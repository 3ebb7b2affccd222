using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Onnx.Tensors;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// An Open Inference Protocol v2 inference request read into tensors: <c>inputs</c> by the model's own names, each
/// with its <c>shape</c>, <c>datatype</c> and <c>data</c> (row-major, flat or nested); the requested <c>outputs</c>
/// (all when absent). With the binary tensor data extension, an input whose <c>parameters</c> give a
/// <c>binary_data_size</c> takes that many bytes of the body after the JSON, in the order of the inputs (elements
/// little-endian; BYTES as a 4-byte length and the bytes of each string), and outputs are returned as binary when
/// their <c>parameters</c> say <c>binary_data</c>, or the request's say <c>binary_data_output</c>.
/// </summary>
/// <param name="Data">Each input's elements as the client sent them in JSON; null for an input sent as binary.</param>
/// <param name="Outputs">The outputs asked for, in order; null for all.</param>
/// <param name="BinaryOutputs">The outputs to return as binary.</param>
internal sealed record OipRequest(IReadOnlyList<Tensor> Inputs, IReadOnlyList<IReadOnlyList<JsonNode?>?> Data, IReadOnlyList<string>? Outputs, IReadOnlySet<string> BinaryOutputs)
{
    private static readonly JsonElement s_null = JsonDocument.Parse("null").RootElement.Clone();

    public static OipRequest Read(ModelSignature signature, JsonObject body, ReadOnlyMemory<byte> binary, string reference)
    {
        var inputs = body["inputs"] as JsonArray ?? [];
        if (inputs.Count == 0 && signature.Inputs.Count > 0)
        {
            throw Bad($"The request needs \"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]; model '{reference}' takes {Describe(signature)}.");
        }

        var tensors = new List<Tensor>(inputs.Count);
        var data = new List<IReadOnlyList<JsonNode?>?>(inputs.Count);
        var offset = 0;
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
            if (tensor["parameters"] is JsonObject parameters && parameters["binary_data_size"] is { } sizeNode)
            {
                if (tensor.ContainsKey("data"))
                {
                    throw Bad($"Input '{name}' has both \"data\" and a binary_data_size: send its elements one way.");
                }

                var size = sizeNode is JsonValue sizeValue && sizeValue.TryGetValue<int>(out var n) && n >= 0 && n <= binary.Length - offset
                    ? n
                    : throw Bad($"Input '{name}' has binary_data_size {sizeNode.ToJsonString()}, but {binary.Length - offset} byte(s) of binary data are left after the JSON.");
                tensors.Add(OipBinary.Read(name, type, shape, binary.Span.Slice(offset, size)));
                data.Add(null);
                offset += size;
                continue;
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

        if (offset != binary.Length)
        {
            throw Bad($"{binary.Length} byte(s) of binary data follow the JSON, but the inputs' binary_data_size account for {offset}.");
        }

        var (outputs, binaryOutputs) = RequestedOutputs(signature, body, reference);
        return new OipRequest(tensors, data, outputs, binaryOutputs);
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

    private static (IReadOnlyList<string>? Names, IReadOnlySet<string> Binary) RequestedOutputs(ModelSignature signature, JsonObject body, string reference)
    {
        var allBinary = Flag(body["parameters"], "binary_data_output") ?? false;
        var binary = new HashSet<string>(StringComparer.Ordinal);
        if (body["outputs"] is not JsonArray outputs || outputs.Count == 0)
        {
            if (allBinary)
            {
                binary.UnionWith(signature.Outputs.Select(o => o.Name));
            }

            return (null, binary);
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

            if (Flag(requested["parameters"], "binary_data") ?? allBinary)
            {
                binary.Add(name);
            }
        }

        return (names, binary);
    }

    private static bool? Flag(JsonNode? parameters, string name) =>
        parameters is JsonObject values && values[name] is JsonValue value && value.TryGetValue<bool>(out var flag) ? flag : null;

    private static JsonElement Element(JsonNode? node) => node switch
    {
        JsonValue value when value.TryGetValue<JsonElement>(out var element) => element,
        null => s_null,
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

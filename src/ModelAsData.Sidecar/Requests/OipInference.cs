using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Onnx.Tensors;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// One Open Inference Protocol v2 inference, faithful to the model: the inputs by the model's own names, shapes and
/// datatypes (<see cref="OipRequest"/>), run as whole tensors (<see cref="OnnxModel.Run"/>), and every output (or the
/// ones asked for) with the name, shape and datatype ONNX Runtime gives it, never renamed or flattened. Works for
/// any model a sidecar validated, tabular or <see cref="ModelSignature.TensorOnly"/>. The decoded columns of
/// prediction tables play no part here.
/// </summary>
internal static class OipInference
{
    /// <summary>Outputs larger than this are logged by shape and datatype only: the log keeps answers, not images.</summary>
    private const int MaxLoggedElements = 1024;

    /// <summary>Strings as UTF-8, not \u escapes: the answer is JSON for clients, never embedded in HTML.</summary>
    private static readonly JsonWriterOptions s_writerOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <param name="binary">The body's bytes after the JSON (binary tensor data extension); empty when there are none.</param>
    /// <param name="key">The caller's parameters.key, logged with a one-row inference to link it to its outcome (051).</param>
    public static OipAnswer Infer(RequestVersion version, JsonObject body, ReadOnlyMemory<byte> binary, string reference, PredictionLog log, CancellationToken cancellationToken,
        string arm = Core.Deployments.Arms.Champion, string? key = null)
    {
        var signature = version.Onnx.Signature;
        var request = OipRequest.Read(signature, body, binary, reference);
        var label = $"{version.Model}@{version.Version.ToString(CultureInfo.InvariantCulture)}";
        var outputs = version.Onnx.Run(label, request.Inputs, request.Outputs, cancellationToken);
        var rows = Log(version, request, outputs, log, arm, key);
        var (answer, jsonLength) = Write(version, body, outputs, request.BinaryOutputs);
        return new OipAnswer(answer, jsonLength, rows);
    }

    /// <summary>
    /// Runs the inference with a shadow version after the answer was sent (025): logged as <see cref="Infer"/> logs,
    /// with arm shadow; nothing is answered.
    /// </summary>
    public static void Shadow(RequestVersion version, JsonObject body, ReadOnlyMemory<byte> binary, string reference, PredictionLog log, CancellationToken cancellationToken,
        string? key = null)
    {
        var request = OipRequest.Read(version.Onnx.Signature, body, binary, reference);
        var label = $"{version.Model}@{version.Version.ToString(CultureInfo.InvariantCulture)}";
        var outputs = version.Onnx.Run(label, request.Inputs, request.Outputs, cancellationToken);
        Log(version, request, outputs, log, Core.Deployments.Arms.Shadow, key);
    }

    /// <returns>The answer, and where its JSON ends when binary outputs follow it.</returns>
    private static (byte[] Body, int? JsonLength) Write(RequestVersion version, JsonObject body, IReadOnlyList<Tensor> outputs, IReadOnlySet<string> binary)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name", version.Model);
            writer.WriteString("model_version", version.Version.ToString(CultureInfo.InvariantCulture));
            if (body["id"] is JsonValue id && id.TryGetValue<string>(out var text))
            {
                writer.WriteString("id", text);
            }

            writer.WriteStartArray("outputs");
            foreach (var output in outputs)
            {
                writer.WriteStartObject();
                writer.WriteString("name", output.Name);
                writer.WriteString("datatype", OipDataType.Of(output.Type));
                writer.WriteStartArray("shape");
                foreach (var d in output.Shape)
                {
                    writer.WriteNumberValue(d);
                }

                writer.WriteEndArray();
                if (binary.Contains(output.Name))
                {
                    writer.WriteStartObject("parameters");
                    writer.WriteNumber("binary_data_size", OipBinary.SizeOf(output));
                    writer.WriteEndObject();
                }
                else
                {
                    writer.WritePropertyName("data");
                    TensorJson.WriteData(writer, output);
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        if (binary.Count == 0)
        {
            return (buffer.WrittenSpan.ToArray(), null);
        }

        var jsonLength = buffer.WrittenCount;
        foreach (var output in outputs.Where(o => binary.Contains(o.Name)))
        {
            OipBinary.Write(buffer, output);
        }

        return (buffer.WrittenSpan.ToArray(), jsonLength);
    }

    /// <summary>
    /// Logs the inference as the SQL doors do: one entry per row when every input and output shares a batch (first)
    /// dimension the model leaves dynamic, so that a row's features hash like the same features given to
    /// <c>mad.predict</c>; otherwise one entry for the whole request. Returns the rows scored. The key is logged only
    /// with a single row: one key cannot link several rows to their outcomes.
    /// </summary>
    private static int Log(RequestVersion version, OipRequest request, IReadOnlyList<Tensor> outputs, PredictionLog log, string arm, string? key)
    {
        var signature = version.Onnx.Signature;
        var now = DateTime.UtcNow;
        var batch = request.Inputs.Count > 0 && request.Inputs[0].Shape.Count > 0 ? request.Inputs[0].Shape[0] : -1;
        var batched = batch > 0
            && request.Data.All(d => d is not null)
            && request.Inputs.All(t => t.Shape.Count > 0 && t.Shape[0] == batch)
            && signature.Inputs.All(i => i.Shape.Length > 0 && i.Shape[0] < 0)
            && outputs.All(t => t.Shape.Count > 0 && t.Shape[0] == batch);
        var rows = batched ? (int)batch : 1;
        for (var row = 0; row < rows; row++)
        {
            var features = new JsonObject();
            for (var i = 0; i < request.Inputs.Count; i++)
            {
                features[request.Inputs[i].Name] = request.Data[i] is { } data
                    ? Slice(data, row, rows)
                    : Digest(request.Inputs[i]);
            }

            var answer = new JsonObject { ["model"] = version.Model, ["version"] = version.Version };
            foreach (var output in outputs)
            {
                answer[output.Name] = output.ElementCount / rows > MaxLoggedElements
                    ? new JsonObject { ["datatype"] = OipDataType.Of(output.Type), ["shape"] = new JsonArray(output.Shape.Select(d => (JsonNode)d).ToArray()) }
                    : Slice(output, row, rows);
            }

            var text = JsonbText.Write(features);
            log.Add(new PredictionLogEntry(now, "http", version.Model, version.Version, PredictionLog.Hash(text), answer, null, null, arm, text, rows == 1 ? key : null));
        }

        return rows;
    }

    /// <summary>An input sent as binary is logged by datatype, shape and the sha256 of its bytes: no JSON text to hash.</summary>
    private static JsonObject Digest(Tensor tensor)
    {
        var bytes = new ArrayBufferWriter<byte>();
        OipBinary.Write(bytes, tensor);
        return new JsonObject
        {
            ["datatype"] = OipDataType.Of(tensor.Type),
            ["shape"] = new JsonArray(tensor.Shape.Select(d => (JsonNode)d).ToArray()),
            ["sha256"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes.WrittenSpan)),
        };
    }

    /// <summary>A row's elements as the client sent them: one value alone, several as an array.</summary>
    private static JsonNode? Slice(IReadOnlyList<JsonNode?> data, int row, int rows)
    {
        var width = data.Count / rows;
        if (width == 1)
        {
            return data[row]?.DeepClone();
        }

        var values = new JsonArray();
        for (var j = 0; j < width; j++)
        {
            values.Add(data[(row * width) + j]?.DeepClone());
        }

        return values;
    }

    private static JsonNode? Slice(Tensor tensor, int row, int rows)
    {
        var width = (int)(tensor.ElementCount / rows);
        var values = new JsonArray();
        var size = FeatureTypes.Size(tensor.Type);
        for (var j = 0; j < width; j++)
        {
            var index = (row * width) + j;
            values.Add(tensor.Type == FeatureType.String ? JsonValue.Create(tensor.Strings![index]) : Element(tensor.Type, tensor.Bytes.AsSpan(index * size, size)));
        }

        return width == 1 ? values[0]?.DeepClone() : values;
    }

    /// <summary>An element as a JSON node for the log (non-finite numbers as null, as the SQL doors log them).</summary>
    private static JsonNode? Element(FeatureType type, ReadOnlySpan<byte> bytes)
    {
        var buffer = new ArrayBufferWriter<byte>(32);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            TensorJson.WriteElement(writer, type, bytes);
        }

        var node = JsonNode.Parse(buffer.WrittenSpan);
        return node is JsonValue value && value.GetValueKind() == JsonValueKind.String && type != FeatureType.String ? null : node;
    }
}

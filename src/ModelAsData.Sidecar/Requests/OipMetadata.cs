using System.Globalization;
using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// A model's Open Inference Protocol metadata (<c>GET /v2/models/{name}</c>): its inputs and outputs as ONNX Runtime
/// reads them, by their own names, with their datatypes and shapes (-1 for a dynamic dimension).
/// </summary>
internal static class OipMetadata
{
    public static JsonObject Describe(RequestVersion version)
    {
        var signature = version.Onnx.Signature;
        return new JsonObject
        {
            ["name"] = version.Model,
            ["versions"] = new JsonArray(version.Version.ToString(CultureInfo.InvariantCulture)),
            ["platform"] = "onnxruntime_onnx",
            ["inputs"] = new JsonArray(signature.Inputs.Select(i => Tensor(i.Name, i.Type, i.Shape)).ToArray()),
            ["outputs"] = new JsonArray(signature.Outputs.Select(o => Tensor(o.Name, o.Type, o.Shape)).ToArray()),
        };
    }

    private static JsonNode Tensor(string name, FeatureType type, long[] shape) => new JsonObject
    {
        ["name"] = name,
        ["datatype"] = OipDataType.Of(type),
        ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
    };
}

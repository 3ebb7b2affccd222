using System.Globalization;
using System.Text.Json.Nodes;
using ModelAsData.Core;

namespace ModelAsData.Sidecar.Requests;

/// <summary>Limits an inference request must keep before anything is scored (the body size is the gate's, <see cref="HttpDoorGate"/>).</summary>
internal static class HttpLimits
{
    /// <summary>
    /// Throws <see cref="ErrorCode.InvalidArgument"/> (400) when an input's first dimension (its row count, as the
    /// Open Inference Protocol's shape says) is above <paramref name="maxRows"/>.
    /// </summary>
    public static void CheckRows(JsonNode? body, int maxRows)
    {
        if (body?["inputs"] is not JsonArray inputs)
        {
            return; // the inference itself says what is missing
        }

        foreach (var input in inputs)
        {
            if (input?["shape"] is JsonArray { Count: > 0 } shape && shape[0] is JsonValue first && first.TryGetValue<double>(out var rows) && rows > maxRows)
            {
                var name = input["name"] is JsonValue n && n.TryGetValue<string>(out var text) ? text : "?";
                throw new ModelAsDataException(ErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture,
                    $"Input '{name}' has {rows:0} rows (the first dimension of its shape); this sidecar scores at most {maxRows:N0} rows per request: split the request, or raise `mad serve --http-max-rows`."));
            }
        }
    }
}

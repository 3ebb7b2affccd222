using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using ModelAsData.Core;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The body of an inference request: a JSON object, followed by the inputs sent as binary (the binary tensor data
/// extension) when the <c>Inference-Header-Content-Length</c> header says where the JSON ends.
/// </summary>
internal static class OipBody
{
    /// <summary>The binary tensor data extension's header: the length in bytes of the JSON at the start of the body.</summary>
    public const string JsonLengthHeader = "Inference-Header-Content-Length";

    public static async Task<(JsonObject Json, ReadOnlyMemory<byte> Binary)> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, cancellationToken);
        var bytes = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        var jsonLength = bytes.Length;
        if (request.Headers.TryGetValue(JsonLengthHeader, out var header)
            && (!int.TryParse(header.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out jsonLength) || jsonLength > bytes.Length))
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"{JsonLengthHeader} is '{header}'; it must be the length in bytes of the JSON that starts the body (at most {bytes.Length}).");
        }

        JsonNode? json;
        try
        {
            json = JsonNode.Parse(bytes.Span[..jsonLength]);
        }
        catch (JsonException e)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"The request body is not valid JSON ({e.Message}).", e);
        }

        var body = json as JsonObject ?? throw OipRequest.Bad("The request body must be a JSON object with \"inputs\".");
        return (body, bytes[jsonLength..].ToArray());
    }
}

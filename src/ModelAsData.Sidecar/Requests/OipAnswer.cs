using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// An inference response: JSON alone (<c>application/json</c>), or JSON followed by the outputs asked for as binary,
/// with <c>Inference-Header-Content-Length</c> saying where the JSON ends.
/// </summary>
/// <param name="Body">The JSON, then any binary outputs in the order the JSON lists them.</param>
/// <param name="JsonLength">Where the JSON ends, when binary outputs follow it; null for JSON alone.</param>
/// <param name="Rows">Rows scored, for the metrics.</param>
internal sealed record OipAnswer(byte[] Body, int? JsonLength, int Rows) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        if (JsonLength is { } length)
        {
            response.Headers[OipBody.JsonLengthHeader] = length.ToString(CultureInfo.InvariantCulture);
            response.ContentType = "application/octet-stream";
        }
        else
        {
            response.ContentType = "application/json";
        }

        response.ContentLength = Body.Length;
        await response.Body.WriteAsync(Body, httpContext.RequestAborted);
    }
}

using System.Text.Json.Nodes;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// One online prediction a shadow samples (025), to score after its answer was sent: the features of a SQL request
/// (<see cref="Features"/>, with its id) or the body of an HTTP inference (<see cref="Body"/> and its binary inputs).
/// </summary>
/// <param name="Door">call, async or http, as the log records it.</param>
/// <param name="Version">The shadow version.</param>
/// <param name="Key">An HTTP inference's parameters.key, logged with the shadow's row (051); a SQL request's is in its request.</param>
internal sealed record ShadowWork(string Door, string Model, int Version, string Reference, string? Features, long? RequestId,
    JsonObject? Body = null, ReadOnlyMemory<byte> Binary = default, string? Key = null);

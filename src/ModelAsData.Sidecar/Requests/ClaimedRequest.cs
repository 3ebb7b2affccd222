namespace ModelAsData.Sidecar.Requests;

/// <summary>A request this sidecar is to answer, from a claim or whole from its notification.</summary>
internal sealed record ClaimedRequest(long Id, string Kind, string Reference, string Model, int Version, string Features);

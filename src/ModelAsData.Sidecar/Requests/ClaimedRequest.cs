namespace ModelAsData.Sidecar.Requests;

/// <summary>A request this sidecar claimed from <c>mad.requests</c> and is to answer.</summary>
internal sealed record ClaimedRequest(long Id, string Kind, string Reference, string Model, int Version, string Features);

namespace ModelAsData.Sidecar.Requests;

/// <summary>A request this sidecar claimed from <c>mad.requests</c> and is to answer.</summary>
/// <param name="ShadowVersion">The deployment's shadow when it samples the request (025): scored after the answer, off its path.</param>
internal sealed record ClaimedRequest(long Id, string Kind, string Reference, string Model, int Version, string Features, int? ShadowVersion = null);

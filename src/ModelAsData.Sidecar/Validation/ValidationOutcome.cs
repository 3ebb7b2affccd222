using ModelAsData.Core.Registry;

namespace ModelAsData.Sidecar.Validation;

/// <summary>What a sidecar decided about one pending version.</summary>
/// <param name="Reason">ONNX Runtime's reason when rejected.</param>
public sealed record ValidationOutcome(string Model, int Version, VersionStatus Status, string? Reason);

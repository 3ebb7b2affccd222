using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Core.Registry;

/// <summary>One immutable version of a model, without its bytes.</summary>
/// <param name="Reason">ONNX Runtime's reason when rejected.</param>
/// <param name="Signature">Inputs, outputs and decoded columns; null while pending or when rejected.</param>
public sealed record ModelVersion(
    string Model,
    int Version,
    string Sha256,
    long SizeBytes,
    VersionStatus Status,
    string? Reason,
    ModelSignature? Signature,
    JsonObject Metadata,
    string CreatedBy,
    DateTimeOffset CreatedAt)
{
    public override string ToString() => $"{Model}@{Version}";
}

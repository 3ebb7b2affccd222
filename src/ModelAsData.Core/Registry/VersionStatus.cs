namespace ModelAsData.Core.Registry;

/// <summary>A version is <c>pending</c> until ONNX Runtime has loaded it, then <c>ready</c> or <c>rejected</c>.</summary>
public enum VersionStatus
{
    Pending,
    Ready,
    Rejected,
}

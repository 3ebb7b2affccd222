using ModelAsData.Core.Onnx;

namespace ModelAsData.Core.Registry;

/// <summary>
/// Validates a model file by its path somewhere other than the calling process, as PostgreSQL's sidecar does: ONNX
/// Runtime needs about twice the model to build a session, and that peak is then not the caller's. It throws what
/// in-process validation throws (same codes, same words) and returns the same signature.
/// </summary>
public interface IModelFileValidator
{
    /// <summary>The signature ONNX Runtime reads from the file, which must have <paramref name="sha256"/> when loaded.</summary>
    Task<ModelSignature> ValidateAsync(string path, string sha256, CancellationToken cancellationToken);
}

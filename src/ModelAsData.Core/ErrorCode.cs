namespace ModelAsData.Core;

/// <summary>What kind of domain failure a <see cref="ModelAsDataException"/> reports; the CLI maps each to an exit code.</summary>
public enum ErrorCode
{
    /// <summary>A name or reference that is not a valid identifier.</summary>
    InvalidName = 10,
    /// <summary>Bytes that ONNX Runtime cannot load, or a blob over the size limit.</summary>
    InvalidModel = 11,
    /// <summary>No model, version or alias of that name.</summary>
    NotFound = 12,
    /// <summary>The version exists but is not ready (pending or rejected).</summary>
    NotReady = 13,
    /// <summary>Features that do not fit the model's signature.</summary>
    FeatureMismatch = 14,
    /// <summary>Something already exists, or a state that forbids the action.</summary>
    Conflict = 15,
    /// <summary>The caller lacks a privilege.</summary>
    PermissionDenied = 16,
    /// <summary>The database cannot be reached or answered with an error.</summary>
    Database = 17,
    /// <summary>An option or argument is wrong.</summary>
    InvalidArgument = 18,
    /// <summary>Waited for work that did not finish in time.</summary>
    Timeout = 19,
    /// <summary>This store does not do that; the message says which store or verb does.</summary>
    NotSupported = 20,
}

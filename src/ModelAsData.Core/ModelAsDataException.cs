namespace ModelAsData.Core;

/// <summary>
/// A domain failure: its message says what failed, what was expected, what was found and what to do.
/// </summary>
public sealed class ModelAsDataException : Exception
{
    public ModelAsDataException(ErrorCode code, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Code = code;
    }

    public ErrorCode Code { get; }
}

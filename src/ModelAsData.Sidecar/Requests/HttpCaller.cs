namespace ModelAsData.Sidecar.Requests;

/// <summary>What the HTTP door knows of a request's sender once its bearer token was checked.</summary>
public enum HttpCallerKind
{
    /// <summary>No <c>Authorization: Bearer</c> header: 401.</summary>
    Anonymous,
    /// <summary>A token that is not one of ours, or revoked, or expired: 401.</summary>
    InvalidToken,
    /// <summary>A live token whose role may not score (it lacks what CALL mad.predict needs): 403.</summary>
    Forbidden,
    /// <summary>A live token whose role may score.</summary>
    Allowed,
}

/// <summary>The sender of one HTTP request: its kind, and for a live token its label and role.</summary>
public sealed record HttpCaller(HttpCallerKind Kind, string? Label = null, string? Role = null)
{
    public static readonly HttpCaller Anonymous = new(HttpCallerKind.Anonymous);

    public static readonly HttpCaller InvalidToken = new(HttpCallerKind.InvalidToken);
}

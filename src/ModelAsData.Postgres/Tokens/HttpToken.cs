namespace ModelAsData.Postgres.Tokens;

/// <summary>One HTTP token as <c>mad.list_http_tokens()</c> shows it (never its hash); <see cref="Status"/> is live, expired or revoked.</summary>
public sealed record HttpToken(string Label, string Role, string Status, string CreatedBy, DateTime CreatedAt, DateTime? ExpiresAt, string? RevokedBy, DateTime? RevokedAt);

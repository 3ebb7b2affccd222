namespace ModelAsData.Postgres.Tokens;

/// <summary>The statements of HTTP tokens; the rules are in the <c>mad</c> SQL functions (009_http_tokens.sql).</summary>
internal static class HttpTokenSql
{
    public const string Create = "SELECT mad.create_http_token(@role, @label, @expiresAt)";

    public const string Revoke = "SELECT mad.revoke_http_token(@label)";

    public const string List = """
        SELECT label AS Label, role AS Role, status AS Status, created_by AS CreatedBy, created_at AS CreatedAt,
               expires_at AS ExpiresAt, revoked_by AS RevokedBy, revoked_at AS RevokedAt
        FROM mad.list_http_tokens()
        """;
}

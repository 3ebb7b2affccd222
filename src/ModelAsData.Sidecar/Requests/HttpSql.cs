namespace ModelAsData.Sidecar.Requests;

/// <summary>The HTTP door's statements; the token rules are in the <c>mad</c> SQL functions (009_http_tokens.sql).</summary>
internal static class HttpSql
{
    public const string CheckToken = "SELECT label AS Label, role AS Role, may_score AS MayScore FROM mad.check_http_token(@hash)";

    public const string LiveTokens = "SELECT mad.live_http_tokens()";
}

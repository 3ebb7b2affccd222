namespace ModelAsData.Sidecar.Requests;

/// <summary>The statements of requests; the protocol itself is in the <c>mad</c> SQL functions (005_online_requests.sql).</summary>
internal static class RequestSql
{
    public const string Resolve = "SELECT mad.resolve(@model, @target)";

    /// <summary>The canary of the alias a reference is served through (017); no row without one.</summary>
    public const string Canary = "SELECT d.canary_version, d.canary_percent, d.seed FROM mad.deployments d WHERE d.model = @model AND d.alias = @alias AND d.canary_version IS NOT NULL";

    public const string LoadVersion = "SELECT sha256 AS Sha256, status AS Status FROM mad.model_versions WHERE model = @model AND version = @version";

    /// <summary>The worker's session: answers need no WAL flush of their own (a lost answer is a request that expires).</summary>
    public const string Session = "SET synchronous_commit = off; LISTEN mad_requests; LISTEN mad_models";

    public const string Arm = "SELECT mad.arm_request_worker($1)";

    /// <summary>The claimed requests, with the shadow version that samples each (025; set when it was submitted).</summary>
    public const string Claim = "SELECT id, kind, reference, model, version, features, shadow_version FROM mad.claim_requests($1, $2, $3)";

    /// <summary>The shadow of the alias a reference is served through (025); no row without one.</summary>
    public const string Shadow = "SELECT d.shadow_version, d.shadow_percent, d.seed FROM mad.deployments d WHERE d.model = @model AND d.alias = @alias AND d.shadow_version IS NOT NULL";

    public const string Answer = "SELECT mad.answer_requests($1, $2::jsonb)";

    public const string Purge = "SELECT mad.purge_requests()";

    /// <summary>After a batch's answers: releases the old ticket (wakes their waiters) and claims what came meanwhile (057_1).</summary>
    public const string ReleaseAndClaim = "SELECT id, kind, reference, model, version, features, shadow_version FROM mad.release_and_claim($1, $2, $3)";

    public const string LogCopy = "COPY mad.prediction_log (predicted_at, door, model, version, inputs_sha256, outputs, error, request_id, sidecar, arm, key, features) FROM STDIN (FORMAT BINARY)";
}

namespace ModelAsData.Sidecar;

/// <summary>The sidecar's runtime statements; the protocol itself lives in the <c>mad</c> SQL functions.</summary>
internal static class SidecarSql
{
    public const string Claim = "SELECT c.model AS Model, c.version AS Version, c.onnx AS Onnx FROM mad.claim_pending_version() c";

    /// <summary>Run on a second session, outside the claim's transaction, so the count is committed before the load.</summary>
    public const string CountAttempt = "SELECT mad.count_validation_attempt(@model, @version, @sidecar)";

    public const string Mark = "SELECT mad.mark_version(@model, @version, @status, @reason, @signature::jsonb, @sidecar)";

    public const string VersionStatus = "SELECT v.status, v.reason FROM mad.model_versions v WHERE v.model = @model AND v.version = @version";

    public const string Register = "SELECT mad.register_sidecar(@id, @host, @pid, @info::jsonb)";

    public const string Heartbeat = "SELECT mad.sidecar_heartbeat(@id)";

    /// <summary>Every heartbeat: advances the rolling canaries whose step is due, each once whatever the number of sidecars (017).</summary>
    public const string AdvanceDeployments = "SELECT mad.advance_deployments(@id)";

    public const string Stopped = "SELECT mad.sidecar_stopped(@id)";

    /// <summary>Null when the database has not been migrated.</summary>
    public const string SchemaReady = "SELECT to_regprocedure('mad.claim_pending_version()') IS NOT NULL";
}

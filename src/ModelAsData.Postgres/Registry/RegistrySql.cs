namespace ModelAsData.Postgres.Registry;

/// <summary>
/// The registry's runtime statements. Every value is a parameter; the logic (validation, roles, version numbers,
/// alias rules) lives in the <c>mad</c> SQL functions, which these only call or read.
/// </summary>
internal static class RegistrySql
{
    private const string VersionColumns = """
        v.model AS Model, v.version AS Version, v.sha256 AS Sha256, v.size_bytes AS SizeBytes, v.status AS Status,
        v.reason AS Reason, v.signature::text AS Signature, v.metadata::text AS Metadata, v.created_by AS CreatedBy,
        v.created_at AS CreatedAt
        """;

    public const string Ping = "SELECT 1";

    public const string Push = "SELECT mad.push_model(@model, @onnx, @metadata::jsonb)";

    public const string Resolve = "SELECT mad.resolve(@model, @target)";

    public const string Version = $"SELECT {VersionColumns} FROM mad.model_versions v WHERE v.model = @model AND v.version = @version";

    public const string BeginPush = "SELECT mad.begin_push(@model, @size, @chunks, @metadata::jsonb)";

    public const string PushChunk = "SELECT mad.push_chunk(@model, @version, @n, @bytes)";

    public const string FinishPush = "SELECT mad.finish_push(@model, @version, @sha256)";

    public const string List = """
        SELECT m.name AS Model,
               (SELECT count(*)::int FROM mad.model_versions v WHERE v.model = m.name) AS Versions,
               (SELECT max(v.version) FROM mad.model_versions v WHERE v.model = m.name AND v.status = 'ready') AS LatestReady,
               (SELECT coalesce(pg_catalog.jsonb_object_agg(a.alias, a.version), '{}')::text FROM mad.aliases a WHERE a.model = m.name) AS Aliases,
               greatest(m.updated_at,
                        (SELECT max(a.updated_at) FROM mad.aliases a WHERE a.model = m.name),
                        (SELECT max(v.validated_at) FROM mad.model_versions v WHERE v.model = m.name)) AS UpdatedAt
        FROM mad.models m
        ORDER BY m.name
        """;

    public const string ListenModels = "LISTEN mad_models";

    /// <summary>Sidecars that stamped a heartbeat in the last minute and have not stopped.</summary>
    public const string LiveSidecars = "SELECT count(*)::int FROM mad.sidecars s WHERE s.stopped_at IS NULL AND s.heartbeat_at > now() - interval '1 minute'";

    public const string RequireModel = "SELECT mad.require_model(@model)";

    public const string Aliases = "SELECT a.alias AS Alias, a.version AS Version FROM mad.aliases a WHERE a.model = @model ORDER BY a.alias";

    public const string SetAlias = "SELECT mad.set_alias(@model, @alias, @version, @reason)";

    public const string RollbackAlias = "SELECT mad.rollback_alias(@model, @alias)";

    public const string AliasAt = "SELECT mad.alias_at(@model, @alias, @at)";

    private const string MoveColumns = """
        h.model AS Model, h.alias AS Alias, h.from_version AS FromVersion, h.to_version AS ToVersion,
        h.moved_by AS MovedBy, h.moved_at AS MovedAt, h.reason AS Reason
        """;

    public const string LastMove = $"SELECT {MoveColumns} FROM mad.alias_history h WHERE h.model = @model AND h.alias = @alias ORDER BY h.id DESC LIMIT 1";

    public const string History = $"SELECT {MoveColumns} FROM mad.alias_history h WHERE h.model = @model AND h.alias = @alias ORDER BY h.id DESC";
}

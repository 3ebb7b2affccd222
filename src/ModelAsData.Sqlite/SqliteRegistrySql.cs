namespace ModelAsData.Sqlite;

/// <summary>The registry's queries on the embedded store. Values are always parameters.</summary>
internal static class SqliteRegistrySql
{
    public const string VersionColumns =
        "model AS Model, version AS Version, sha256 AS Sha256, size_bytes AS SizeBytes, status AS Status, reason AS Reason, " +
        "signature AS Signature, metadata AS Metadata, created_by AS CreatedBy, created_at AS CreatedAt";

    /// <summary>The model row is the version counter, as in PostgreSQL's mad.push_model: returns the new version.</summary>
    public const string NextVersion = """
        INSERT INTO mad_models (name, last_version, created_by, created_at, updated_at) VALUES (@model, 1, @by, @at, @at)
        ON CONFLICT (name) DO UPDATE SET last_version = last_version + 1, updated_at = excluded.updated_at
        RETURNING last_version
        """;

    public const string InsertVersion = """
        INSERT INTO mad_model_versions (model, version, onnx, chunks, sha256, size_bytes, status, reason, signature, metadata,
                                        created_by, created_at, validated_by, validated_at)
        VALUES (@model, @version, @onnx, @chunks, @sha256, @size, @status, @reason, @signature, @metadata, @by, @at, @by, @at)
        """;

    public const string Version = $"SELECT {VersionColumns} FROM mad_model_versions WHERE model = @model AND version = @version";

    public const string NewestReady = $"SELECT {VersionColumns} FROM mad_model_versions WHERE model = @model AND status = 'ready' ORDER BY version DESC LIMIT 1";

    public const string ModelNames = "SELECT name FROM mad_models ORDER BY name";

    public const string VersionStatuses = "SELECT version AS Version, status AS Status FROM mad_model_versions WHERE model = @model ORDER BY version";

    public const string Models = """
        SELECT m.name AS Model,
               (SELECT count(*) FROM mad_model_versions v WHERE v.model = m.name) AS Versions,
               (SELECT max(version) FROM mad_model_versions v WHERE v.model = m.name AND v.status = 'ready') AS LatestReady,
               -- As PostgreSQL's list: the latest of a push, an alias move and a validation (times sort as text).
               max(m.updated_at,
                   coalesce((SELECT max(a.updated_at) FROM mad_aliases a WHERE a.model = m.name), m.updated_at),
                   coalesce((SELECT max(v.validated_at) FROM mad_model_versions v WHERE v.model = m.name), m.updated_at)) AS UpdatedAt
        FROM mad_models m ORDER BY m.name
        """;

    public const string AllAliases = "SELECT model AS Model, alias AS Alias, version AS Version FROM mad_aliases ORDER BY model, alias";

    public const string Aliases = "SELECT alias AS Alias, version AS Version FROM mad_aliases WHERE model = @model ORDER BY alias";

    public const string AliasTarget = "SELECT version FROM mad_aliases WHERE model = @model AND alias = @alias";

    public const string UpsertAlias = """
        INSERT INTO mad_aliases (model, alias, version, updated_by, updated_at) VALUES (@model, @alias, @version, @by, @at)
        ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, updated_by = excluded.updated_by, updated_at = excluded.updated_at
        """;

    public const string InsertHistory = """
        INSERT INTO mad_alias_history (model, alias, from_version, to_version, kind, moved_by, moved_at, reason)
        VALUES (@model, @alias, @from, @to, @kind, @by, @at, @reason)
        """;

    public const string History = """
        SELECT model AS Model, alias AS Alias, from_version AS FromVersion, to_version AS ToVersion, moved_by AS MovedBy, moved_at AS MovedAt, reason AS Reason
        FROM mad_alias_history WHERE model = @model AND alias = @alias ORDER BY id DESC
        """;

    public const string AliasAt = """
        SELECT to_version FROM mad_alias_history WHERE model = @model AND alias = @alias AND moved_at <= @at ORDER BY moved_at DESC, id DESC LIMIT 1
        """;
}

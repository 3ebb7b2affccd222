namespace ModelAsData.Sync;

/// <summary>The statements of a sync: what a pull reads centrally, and how it writes the device file.</summary>
internal static class SyncSql
{
    public const string CentralModels = """
        SELECT name AS Name, last_version AS LastVersion, created_by AS CreatedBy, created_at AS CreatedAt, updated_at AS UpdatedAt
        FROM mad.models WHERE name = ANY(@names)
        """;

    public const string CentralAliases = """
        SELECT model AS Model, alias AS Alias, version AS Version, updated_by AS UpdatedBy, updated_at AS UpdatedAt
        FROM mad.aliases WHERE model = ANY(@names) ORDER BY model, alias
        """;

    public const string CentralDeployments = """
        SELECT model AS Model, alias AS Alias, seed AS Seed, canary_version AS CanaryVersion, canary_percent AS CanaryPercent,
               shadow_version AS ShadowVersion, shadow_percent AS ShadowPercent, updated_by AS UpdatedBy, updated_at AS UpdatedAt
        FROM mad.deployments WHERE model = ANY(@names)
        """;

    // The bytes are read apart, only for versions the device does not hold yet.
    public const string CentralVersion = """
        SELECT model AS Model, version AS Version, sha256 AS Sha256, size_bytes AS SizeBytes, status AS Status, reason AS Reason,
               signature::text AS Signature, metadata::text AS Metadata, created_by AS CreatedBy, created_at AS CreatedAt,
               validated_by AS ValidatedBy, validated_at AS ValidatedAt, chunks AS Chunks
        FROM mad.model_versions WHERE model = @model AND version = @version
        """;

    // A version's bytes whole (chunks = 0), or one chunk of a chunked one (030).
    public const string CentralBytes = "SELECT mad.device_version_bytes(@model, @version)";

    public const string CentralChunk = "SELECT mad.device_version_chunk(@model, @version, @n)";

    // A model pushed on the device too keeps the larger counter, so its next local push does not reuse a number.
    public const string DeviceModel = """
        INSERT INTO mad_models (name, last_version, created_by, created_at, updated_at) VALUES (@Name, @LastVersion, @CreatedBy, @createdAt, @updatedAt)
        ON CONFLICT (name) DO UPDATE SET last_version = max(last_version, excluded.last_version), updated_at = excluded.updated_at
        """;

    public const string DeviceVersion = """
        INSERT INTO mad_model_versions (model, version, onnx, chunks, sha256, size_bytes, status, reason, signature, metadata, created_by, created_at, validated_by, validated_at)
        VALUES (@Model, @Version, @Onnx, @Chunks, @Sha256, @SizeBytes, @Status, @Reason, @Signature, @Metadata, @CreatedBy, @createdAt, @ValidatedBy, @validatedAt)
        """;

    // The move is recorded as the central one was made, so alias_at on the device answers as it does centrally.
    public const string DeviceAlias = """
        INSERT INTO mad_aliases (model, alias, version, updated_by, updated_at) VALUES (@Model, @Alias, @Version, @UpdatedBy, @updatedAt)
        ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, updated_by = excluded.updated_by, updated_at = excluded.updated_at;
        INSERT INTO mad_alias_history (model, alias, from_version, to_version, kind, moved_by, moved_at, reason)
        VALUES (@Model, @Alias, @from, @Version, 'set', @UpdatedBy, @updatedAt, 'mad sync pull at ' || @now);
        """;

    public const string DeviceDeployment = """
        INSERT INTO mad_deployments (model, alias, seed, canary_version, canary_percent, shadow_version, shadow_percent, updated_by, updated_at)
        VALUES (@Model, @Alias, @Seed, @CanaryVersion, @CanaryPercent, @ShadowVersion, @ShadowPercent, @UpdatedBy, @updatedAt)
        ON CONFLICT (model, alias) DO UPDATE SET seed = excluded.seed, canary_version = excluded.canary_version, canary_percent = excluded.canary_percent,
            shadow_version = excluded.shadow_version, shadow_percent = excluded.shadow_percent, updated_by = excluded.updated_by, updated_at = excluded.updated_at;
        INSERT INTO mad_deployment_history (model, alias, kind, version, canary_version, canary_percent, shadow_version, shadow_percent, seed, changed_by, changed_at, reason)
        VALUES (@Model, @Alias, CASE WHEN @CanaryVersion IS NOT NULL THEN 'canary' WHEN @ShadowVersion IS NOT NULL THEN 'shadow' ELSE 'deploy' END,
                @version, @CanaryVersion, @CanaryPercent, @ShadowVersion, @ShadowPercent, @Seed, @UpdatedBy, @updatedAt, 'mad sync pull at ' || @now);
        """;

    public const string DevicePulled = """
        INSERT INTO mad_device (singleton, id, last_pull_at) VALUES (1, @id, @now)
        ON CONFLICT (singleton) DO UPDATE SET id = coalesce(excluded.id, id), last_pull_at = excluded.last_pull_at
        """;

    public const string DevicePushed = """
        INSERT INTO mad_device (singleton, id, last_push_at) VALUES (1, @id, @now)
        ON CONFLICT (singleton) DO UPDATE SET id = excluded.id, last_push_at = excluded.last_push_at
        """;
}

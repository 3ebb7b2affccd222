namespace ModelAsData.Sqlite;

/// <summary>Statements of the embedded store's deployments (sql/sqlite/004_deployments.sql).</summary>
internal static class SqliteDeploymentSql
{
    public const string Get = """
        SELECT a.model AS Model, a.alias AS Alias, a.version AS Version, d.canary_version AS CanaryVersion, d.canary_percent AS CanaryPercent,
               d.shadow_version AS ShadowVersion, d.shadow_percent AS ShadowPercent, d.seed AS Seed
        FROM mad_aliases a LEFT JOIN mad_deployments d ON d.model = a.model AND d.alias = a.alias
        WHERE a.model = @model AND a.alias = @alias
        """;

    public const string UpsertCanary = """
        INSERT INTO mad_deployments (model, alias, seed, canary_version, canary_percent, updated_by, updated_at)
        VALUES (@model, @alias, @seed, @version, @percent, @by, @at)
        ON CONFLICT (model, alias) DO UPDATE SET seed = excluded.seed, canary_version = excluded.canary_version,
          canary_percent = excluded.canary_percent, updated_by = excluded.updated_by, updated_at = excluded.updated_at
        """;

    public const string UpsertShadow = """
        INSERT INTO mad_deployments (model, alias, seed, shadow_version, shadow_percent, updated_by, updated_at)
        VALUES (@model, @alias, @seed, @version, @percent, @by, @at)
        ON CONFLICT (model, alias) DO UPDATE SET shadow_version = excluded.shadow_version, shadow_percent = excluded.shadow_percent,
          updated_by = excluded.updated_by, updated_at = excluded.updated_at
        """;

    public const string EndCanary = """
        UPDATE mad_deployments SET canary_version = NULL, canary_percent = NULL, updated_by = @by, updated_at = @at
        WHERE model = @model AND alias = @alias
        """;

    public const string EndAll = """
        UPDATE mad_deployments SET canary_version = NULL, canary_percent = NULL, shadow_version = NULL, shadow_percent = NULL,
          updated_by = @by, updated_at = @at
        WHERE model = @model AND alias = @alias
        """;

    public const string Record = """
        INSERT INTO mad_deployment_history (model, alias, kind, version, canary_version, canary_percent, shadow_version, shadow_percent, seed, changed_by, changed_at, reason)
        SELECT a.model, a.alias, @kind, a.version, d.canary_version, d.canary_percent, d.shadow_version, d.shadow_percent, d.seed, @by, @at, @reason
        FROM mad_aliases a LEFT JOIN mad_deployments d ON d.model = a.model AND d.alias = a.alias
        WHERE a.model = @model AND a.alias = @alias
        """;

    /// <summary>The last change at or before a moment (PostgreSQL's mad.deployment_at reads the same).</summary>
    public const string ChangeAt = """
        SELECT canary_version AS CanaryVersion, canary_percent AS CanaryPercent, shadow_version AS ShadowVersion, shadow_percent AS ShadowPercent, seed AS Seed
        FROM mad_deployment_history WHERE model = @model AND alias = @alias AND changed_at <= @at ORDER BY changed_at DESC, id DESC LIMIT 1
        """;

    public const string History = """
        SELECT kind AS Kind, version AS Version, canary_version AS CanaryVersion, canary_percent AS CanaryPercent, shadow_version AS ShadowVersion,
               shadow_percent AS ShadowPercent, changed_by AS ChangedBy, changed_at AS ChangedAt, reason AS Reason
        FROM mad_deployment_history WHERE model = @model AND alias = @alias ORDER BY changed_at DESC, id DESC
        """;

    /// <summary>Prediction tables served through model@alias: bound to 'model@alias', or to bare 'model' when the alias is production.</summary>
    public const string TablesServedThrough = """
        SELECT name FROM mad_prediction_tables WHERE model = @reference OR (@bare AND model = @model) ORDER BY name
        """;
}

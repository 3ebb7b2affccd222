namespace ModelAsData.Postgres.Deployments;

/// <summary>
/// Runtime statements of deployments. The rules (who may deploy, what may be deployed, steps, gates) live in the
/// <c>mad</c> SQL functions of sql/postgres/017_deployments.sql; these only call them or read their tables.
/// </summary>
internal static class DeploymentSql
{
    public const string Deploy = "SELECT mad.deploy(@model, @alias, @version, @reason)";

    public const string DeployCanary = """
        SELECT mad.deploy_canary(@model, @alias, @version, percent => @percent::float8, steps => @steps::float8[],
                                 step_every => @stepEvery::interval, reason => @reason)
        """;

    public const string DeployShadow = "SELECT mad.deploy_shadow(@model, @alias, @version, percent => @percent::float8, reason => @reason)";

    public const string Promote = "SELECT mad.promote(@model, @alias, @reason)";

    public const string Abort = "SELECT mad.abort_deployment(@model, @alias, @reason)";

    /// <summary>Validates the names and raises "not found" naming what exists (mad.alias_at does both).</summary>
    public const string RequireAlias = "SELECT mad.alias_at(@model, @alias, now())";

    public const string Get = """
        SELECT a.model AS Model, a.alias AS Alias, a.version AS Version, d.canary_version AS CanaryVersion,
               d.canary_percent AS CanaryPercent, d.steps AS Steps, d.step_every AS StepEvery, d.next_step_at AS NextStepAt,
               d.shadow_version AS ShadowVersion, d.shadow_percent AS ShadowPercent, d.seed AS Seed
        FROM mad.aliases a LEFT JOIN mad.deployments d USING (model, alias)
        WHERE a.model = @model AND a.alias = @alias
        """;

    public const string Report = """
        SELECT r.arm AS Arm, r.version AS Version, r.percent AS Percent, r.rows_scored AS RowsScored, r.rows_failed AS RowsFailed,
               r.error_rate AS ErrorRate, r.share_equal AS ShareEqual, r.mean_absolute_difference AS MeanAbsoluteDifference,
               r.shadow_error AS ShadowError, r.legacy_share_equal AS LegacyShareEqual, r.legacy_mean_absolute_difference AS LegacyMeanAbsoluteDifference,
               r.rows_compared AS RowsCompared
        FROM mad.deployment_report r WHERE r.model = @model AND r.alias = @alias
        ORDER BY array_position(ARRAY['champion', 'canary', 'shadow'], r.arm)
        """;

    /// <summary>025_3: the binding's owner or mad_admin, with SELECT on the column; NULL forgets it.</summary>
    public const string SetLegacyColumn = "SELECT mad.set_legacy_column(@table, @column, @output)";

    public const string GetLegacyColumn = """
        SELECT p.name AS PredictionTable, p.legacy_column AS Column, p.legacy_output AS Output FROM mad.prediction_tables p WHERE p.name = @table
        """;

    /// <summary>SECURITY INVOKER: read with the caller's own rights.</summary>
    public const string LegacyAgreement = """
        SELECT g.arm AS Arm, g.model_version AS ModelVersion, g.rows_compared AS RowsCompared, g.share_equal AS ShareEqual,
               g.mean_absolute_difference AS MeanAbsoluteDifference
        FROM mad.legacy_agreement(@table) g ORDER BY array_position(ARRAY['champion', 'canary', 'shadow'], g.arm), g.model_version
        """;

    /// <summary>017: the champion by mad.alias_at, the canary and shadow of the last change at or before the moment.</summary>
    public const string DeploymentAt = """
        SELECT g.version AS Version, g.canary_version AS CanaryVersion, g.canary_percent AS CanaryPercent, g.shadow_version AS ShadowVersion,
               g.shadow_percent AS ShadowPercent, g.seed AS Seed
        FROM mad.deployment_at(@model, @alias, @at) g
        """;

    public const string History = """
        SELECT h.kind AS Kind, h.version AS Version, h.canary_version AS CanaryVersion, h.canary_percent AS CanaryPercent,
               h.shadow_version AS ShadowVersion, h.shadow_percent AS ShadowPercent, h.changed_by AS ChangedBy,
               h.changed_at AS ChangedAt, h.reason AS Reason
        FROM mad.deployment_history h WHERE h.model = @model AND h.alias = @alias ORDER BY h.changed_at DESC, h.id DESC
        """;
}

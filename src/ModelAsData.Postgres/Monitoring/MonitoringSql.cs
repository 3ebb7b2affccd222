namespace ModelAsData.Postgres.Monitoring;

/// <summary>The statements of drift monitoring (sql/postgres/018_drift.sql defines what they call).</summary>
internal static class MonitoringSql
{
    /// <summary>The version's profiles, or one row of nulls when counting is off (026_4), in one round trip.</summary>
    public const string Baseline = """
        SELECT kind, column_name, type, edges, categories, counts, null_count, spread
        FROM mad.baselines WHERE model = $1 AND version = $2 AND mad.setting_int('drift_counting', 1) <> 0
        UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE mad.setting_int('drift_counting', 1) = 0
        ORDER BY 1, 2
        """;

    public const string AddCounts = "SELECT mad.add_profile_counts($1, $2, $3, $4, $5, $6, $7)";

    public const string StoreFirstWindow = "SELECT mad.store_first_window($1, $2, $3, $4::jsonb)";

    public const string SetBaseline = "SELECT mad.set_baseline($1, $2, $3::regclass, $4::jsonb)";

    public const string StoreBaseline = "SELECT mad.store_baseline($1, $2, $3, 'output', $4::jsonb)";

    public const string BaselineColumns = "SELECT column_name, read_as FROM mad.baseline_columns($1, $2, $3::regclass)";

    public const string SourceName = "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::regclass";

    /// <summary>The features of the first prediction table bound to the model, and the baseline's columns.</summary>
    public const string Mapping = """
        SELECT (SELECT p.features::text FROM mad.prediction_tables p WHERE split_part(p.model, '@', 1) = $1 ORDER BY p.created_at LIMIT 1),
               ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = $2::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
        """;

    public const string Drift = """
        SELECT window_start, window_end, version, "column", kind, metric, value, threshold, drifted, n_baseline, n_current, reference
        FROM mad.drift($1, $2, $3)
        """;

    public const string Histograms = """
        SELECT window_start, window_end, version, "column", kind, bin, label, baseline, current
        FROM mad.drift_histograms($1, $2, $3)
        """;
}

namespace ModelAsData.Sqlite;

/// <summary>The statements of drift monitoring on the embedded store (sql/sqlite/005_drift.sql).</summary>
internal static class SqliteMonitoringSql
{
    public const string InsertBaseline = """
        INSERT INTO mad_baselines (model, version, kind, column_name, type, edges, categories, counts, null_count, spread, source, created_by, created_at)
        VALUES (@model, @version, @kind, @column, @type, @edges, @categories, @counts, @nulls, @spread, @source, @by, @at)
        """;

    /// <summary>A first-window reference (sql/sqlite/010_drift_fallback.sql): a column with a profile keeps it.</summary>
    public const string InsertFirstWindow = """
        INSERT INTO mad_baselines (model, version, kind, column_name, type, edges, categories, counts, null_count, spread, source, created_by, created_at, reference)
        SELECT @model, @version, @kind, @column, @type, @edges, @categories, @counts, @nulls, @spread, @source, @by, @at, 'first_window'
        WHERE NOT EXISTS (SELECT 1 FROM mad_baselines WHERE model = @model AND version = @version AND kind = @kind)
        ON CONFLICT (model, version, kind, column_name) DO NOTHING
        """;

    public const string Baseline = """
        SELECT kind, column_name, type, edges, categories, counts, null_count, spread, source, reference
        FROM mad_baselines WHERE model = @model AND version = @version ORDER BY kind, column_name
        """;

    public const string AddCount = """
        INSERT INTO mad_profile_counts (prediction_table, version, window_start, kind, column_name, bin, count)
        VALUES (@table, @version, @window, @kind, @column, @bin, @count)
        ON CONFLICT (prediction_table, window_start, version, kind, column_name, bin) DO UPDATE SET count = count + excluded.count
        """;

    public const string Counts = """
        SELECT version, window_start, kind, column_name, bin, count FROM mad_profile_counts
        WHERE prediction_table = @table AND window_start >= @since AND window_start < @until
        """;
}

namespace ModelAsData.Sqlite;

/// <summary>Queries on prediction tables. User identifiers reach SQL only through <see cref="SqliteDatabase.Quote"/> after a catalog check.</summary>
internal static class SqliteTableSql
{
    public const string TableColumns = "SELECT name AS Name, type AS Type FROM pragma_table_info(@table) ORDER BY cid";

    public const string TableExists = "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = @table";

    public const string Insert = """
        INSERT INTO mad_prediction_tables (name, source, key_columns, model_ref, features, columns, created_by, created_at)
        VALUES (@name, @source, @key, @model, @features, @columns, @by, @at)
        """;

    public const string Columns = """
        name AS Name, source AS Source, key_columns AS KeyColumns, model_ref AS ModelRef, features AS Features, columns AS Columns,
        refreshed_at AS RefreshedAt, refreshed_version AS RefreshedVersion, rows_scored AS RowsScored, rows_failed AS RowsFailed
        """;

    public const string Get = $"SELECT {Columns} FROM mad_prediction_tables WHERE name = @name";

    public const string List = $"SELECT {Columns} FROM mad_prediction_tables ORDER BY name";

    public const string Refreshed = """
        UPDATE mad_prediction_tables SET refreshed_at = @at, refreshed_version = @version, rows_scored = @rows, rows_failed = @failed
        WHERE name = @name
        """;
}

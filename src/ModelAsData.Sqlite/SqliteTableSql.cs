namespace ModelAsData.Sqlite;

/// <summary>Queries on prediction tables. User identifiers reach SQL only through <see cref="SqliteDatabase.Quote"/> after a catalog check.</summary>
internal static class SqliteTableSql
{
    public const string TableColumns = "SELECT name AS Name, type AS Type FROM pragma_table_info(@table) ORDER BY cid";

    /// <summary>The catalog's spelling of a table or view, matched as SQLite matches names: without case.</summary>
    public const string TableName = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name = @table COLLATE NOCASE";

    public const string Insert = """
        INSERT INTO mad_prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns, created_by, created_at)
        VALUES (@name, @source, @keyColumns, @keyTypes, @model, @features, @featureColumns, @columns, @by, @at)
        """;

    public const string Columns = """
        name AS Name, source AS Source, key_columns AS KeyColumns, model AS Model, features AS Features, columns AS Columns,
        refreshed_at AS RefreshedAt, refreshed_version AS RefreshedVersion, rows_scored AS RowsScored, rows_failed AS RowsFailed
        """;

    public const string Get = $"SELECT {Columns} FROM mad_prediction_tables WHERE name = @name";

    public const string List = $"SELECT {Columns} FROM mad_prediction_tables ORDER BY name";

    public const string Refreshed = """
        UPDATE mad_prediction_tables SET refreshed_at = @at, refreshed_version = @version, rows_scored = @rows, rows_failed = @failed
        WHERE name = @name
        """;

    /// <summary>019_m: the sums of the last refreshes' champion-vs-canary comparison.</summary>
    public const string Agreement = """
        SELECT canary_agreement_seed, canary_agreement_version, canary_agreement_rows, canary_agreement_equal, canary_agreement_differences
        FROM mad_prediction_tables WHERE name = @name
        """;

    public const string RecordAgreement = """
        UPDATE mad_prediction_tables SET canary_agreement_seed = @seed, canary_agreement_version = @version, canary_agreement_rows = @rows,
          canary_agreement_equal = @equal, canary_agreement_differences = @differences
        WHERE name = @name
        """;

    public const string ClearAgreement = """
        UPDATE mad_prediction_tables SET canary_agreement_seed = NULL, canary_agreement_version = NULL, canary_agreement_rows = NULL,
          canary_agreement_equal = NULL, canary_agreement_differences = NULL
        WHERE name = @name
        """;
}

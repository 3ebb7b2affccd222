using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace ModelAsData.Sqlite;

/// <summary>
/// A prepared statement driven through SQLite's own API: typed binds and reads, step, reset. The refresh reads and
/// writes every row through these, because ADO.NET's per-row overhead (reader objects, boxed values, parameter type
/// mapping) costs more than SQLite's own work. Runs inside the connection's current
/// transaction. Not thread-safe; dispose to finalize.
/// </summary>
internal sealed class SqliteRawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    public SqliteRawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle!;
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));
    }

    /// <summary>Binds parameter <paramref name="index"/> (1-based) to a value of any type a SQLite column can hold.</summary>
    public void Bind(int index, object? value) => Check(value switch
    {
        null or DBNull => raw.sqlite3_bind_null(_statement, index),
        long l => raw.sqlite3_bind_int64(_statement, index, l),
        int i => raw.sqlite3_bind_int64(_statement, index, i),
        double d when double.IsNaN(d) => raw.sqlite3_bind_null(_statement, index),
        double d => raw.sqlite3_bind_double(_statement, index, d),
        string s => raw.sqlite3_bind_text(_statement, index, s),
        byte[] b => raw.sqlite3_bind_blob(_statement, index, b),
        bool b => raw.sqlite3_bind_int64(_statement, index, b ? 1 : 0),
        _ => raw.sqlite3_bind_text(_statement, index, Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)),
    });

    public void Bind(int index, double value) =>
        Check(double.IsNaN(value) ? raw.sqlite3_bind_null(_statement, index) : raw.sqlite3_bind_double(_statement, index, value));

    public void Bind(int index, long value) => Check(raw.sqlite3_bind_int64(_statement, index, value));

    /// <summary>Runs the statement once and resets it for the next binds.</summary>
    public void Execute()
    {
        var result = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (result != raw.SQLITE_DONE && result != raw.SQLITE_ROW)
        {
            throw new SqliteException(raw.sqlite3_errmsg(_db).utf8_to_string(), result);
        }
    }

    /// <summary>Moves to the next result row; false (and reset) after the last.</summary>
    public bool Read()
    {
        var result = raw.sqlite3_step(_statement);
        if (result == raw.SQLITE_ROW)
        {
            return true;
        }

        raw.sqlite3_reset(_statement);
        return result == raw.SQLITE_DONE ? false : throw new SqliteException(raw.sqlite3_errmsg(_db).utf8_to_string(), result);
    }

    /// <summary>The storage class of a column of the current row: <c>raw.SQLITE_INTEGER</c>, <c>SQLITE_FLOAT</c>, <c>SQLITE_TEXT</c>, <c>SQLITE_BLOB</c> or <c>SQLITE_NULL</c>.</summary>
    public int ColumnType(int column) => raw.sqlite3_column_type(_statement, column);

    public double GetDouble(int column) => raw.sqlite3_column_double(_statement, column);

    public long GetInt64(int column) => raw.sqlite3_column_int64(_statement, column);

    public string GetString(int column) => raw.sqlite3_column_text(_statement, column).utf8_to_string();

    /// <summary>A column of the current row as long, double, string, byte[] or null.</summary>
    public object? GetValue(int column) => ColumnType(column) switch
    {
        raw.SQLITE_INTEGER => GetInt64(column),
        raw.SQLITE_FLOAT => GetDouble(column),
        raw.SQLITE_TEXT => GetString(column),
        raw.SQLITE_BLOB => raw.sqlite3_column_blob(_statement, column).ToArray(),
        _ => null,
    };

    public void Dispose() => _statement.Dispose();

    private void Check(int result)
    {
        if (result != raw.SQLITE_OK)
        {
            throw new SqliteException(raw.sqlite3_errmsg(_db).utf8_to_string(), result);
        }
    }
}

using Microsoft.Data.Sqlite;

namespace ModelAsData.Sqlite;

/// <summary>Opens a SQLite file the way every part of the embedded store expects it.</summary>
public static class SqliteDatabase
{
    private static readonly System.Reflection.PropertyInfo? s_connectionTransaction =
        typeof(SqliteConnection).GetProperty("Transaction", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic);

    /// <summary>
    /// Opens (creating if needed) the file at <paramref name="path"/> in WAL mode with foreign keys on and a busy
    /// timeout, so that a CLI and an application can share it. The caller owns the connection.
    /// </summary>
    public static async Task<SqliteConnection> OpenAsync(string path, CancellationToken cancellationToken = default)
    {
        var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, DefaultTimeout = 30 };
        var connection = new SqliteConnection(builder.ToString());
        await connection.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;";
        await command.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    /// <summary>
    /// The transaction the caller has open on the connection, if any. predict() resolves references on the caller's
    /// connection, often inside their transaction, and Microsoft.Data.Sqlite refuses a command without it there. It
    /// keeps the connection's transaction in a non-public property, hence reflection.
    /// </summary>
    internal static SqliteTransaction? OpenTransaction(SqliteConnection connection) =>
        s_connectionTransaction?.GetValue(connection) as SqliteTransaction;

    /// <summary>Quotes an identifier for SQLite: wrapped in double quotes, inner quotes doubled.</summary>
    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}

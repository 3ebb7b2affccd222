using Microsoft.Data.Sqlite;

namespace ModelAsData.Sqlite;

/// <summary>Opens a SQLite file the way every part of the embedded store expects it.</summary>
public static class SqliteDatabase
{
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

    /// <summary>Quotes an identifier for SQLite: wrapped in double quotes, inner quotes doubled.</summary>
    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}

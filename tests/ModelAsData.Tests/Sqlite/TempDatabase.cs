using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;

namespace ModelAsData.Tests.Sqlite;

/// <summary>
/// A SQLite file in a folder of its own under the temp folder, deleted with the folder when the test ends. Holds the
/// registry it opened (migrated) and disposes it.
/// </summary>
internal sealed class TempDatabase : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];

    private TempDatabase(string folder, SqliteModelRegistry registry)
    {
        Folder = folder;
        Path = System.IO.Path.Combine(folder, "test.db");
        Registry = registry;
    }

    public string Folder { get; }

    public string Path { get; }

    public SqliteModelRegistry Registry { get; }

    public SqliteConnection Connection => Registry.Connection;

    /// <summary>A fresh folder with a migrated registry file in it.</summary>
    public static async Task<TempDatabase> CreateAsync()
    {
        var folder = NewFolder();
        var registry = await SqliteModelRegistry.OpenAsync(System.IO.Path.Combine(folder, "test.db"));
        return new TempDatabase(folder, registry);
    }

    /// <summary>A unique empty folder, for tests that make their own files.</summary>
    public static string NewFolder()
    {
        var folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mad-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>Another registry on the same file, disposed with this one.</summary>
    public async Task<SqliteModelRegistry> OpenAnotherAsync()
    {
        var registry = await SqliteModelRegistry.OpenAsync(Path);
        _owned.Add(registry);
        return registry;
    }

    /// <summary>Another plain connection on the same file, disposed with this one.</summary>
    public async Task<SqliteConnection> OpenConnectionAsync()
    {
        var connection = await SqliteDatabase.OpenAsync(Path);
        _owned.Add(connection);
        return connection;
    }

    public Task<ModelVersion> PushAsync(string model, string externalFile, JsonObject? metadata = null) =>
        Registry.PushAsync(model, TestModels.ExternalBytes(externalFile), metadata ?? []);

    public void Execute(string sql) => Execute(Connection, sql);

    public static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    public object? Scalar(string sql) => Scalar(Connection, sql);

    public static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    /// <summary>Every row of a query, each as column name → value (null for SQL NULL).</summary>
    public List<Dictionary<string, object?>> Rows(string sql)
    {
        using var command = Connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var rows = new List<Dictionary<string, object?>>();
        while (reader.Read())
        {
            var row = new Dictionary<string, object?>(StringComparer.Ordinal);
            for (var i = 0; i < reader.FieldCount; i++)
            {
                row[reader.GetName(i)] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            rows.Add(row);
        }

        return rows;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }

        await Registry.DisposeAsync();
        DeleteFolder(Folder);
    }

    /// <summary>Deletes a test folder; pooled connections to its files are closed first.</summary>
    public static void DeleteFolder(string folder)
    {
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

using Dapper;
using ModelAsData.Core;
using ModelAsData.Sqlite;

namespace ModelAsData.Cli.Demo;

/// <summary>The demo starts from an empty file each time, but never deletes a file it did not make.</summary>
internal static class DemoFile
{
    public static async Task ReplaceAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            return;
        }

        await using (var connection = await SqliteDatabase.OpenAsync(path, cancellationToken))
        {
            var tables = (await connection.QueryAsync<string>("SELECT name FROM sqlite_master WHERE type = 'table'")).ToHashSet();
            var isDemo = tables.Contains("flowers") && tables.Contains("passengers") && tables.Contains("mad_models");
            if (!isDemo && tables.Count > 0)
            {
                throw new ModelAsDataException(ErrorCode.Conflict, $"{path} exists and is not a demo database: choose another file with --db.");
            }
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
        {
            File.Delete(file);
        }
    }
}

using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;

namespace ModelAsData.Sqlite;

/// <summary>
/// Applies the numbered scripts of sql/sqlite (embedded in this assembly) in name order, each in its own immediate
/// transaction, recording name and checksum in <c>mad_schema_migrations</c>. Forward-only and idempotent.
/// </summary>
internal static class SqliteMigrator
{
    private const string ResourcePrefix = "ModelAsData.Sqlite.Sql.";

    public static async Task MigrateAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        await connection.ExecuteAsync(new CommandDefinition(
            "CREATE TABLE IF NOT EXISTS mad_schema_migrations (name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT",
            cancellationToken: cancellationToken));

        foreach (var (name, script) in Scripts())
        {
            var checksum = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(script)));
            // BEGIN IMMEDIATE takes the write lock first, so two processes migrating at once apply each script once.
            using var transaction = connection.BeginTransaction(deferred: false);
            var applied = await connection.QuerySingleOrDefaultAsync<string>(new CommandDefinition(
                "SELECT checksum FROM mad_schema_migrations WHERE name = @name", new { name }, transaction, cancellationToken: cancellationToken));
            if (applied is not null)
            {
                if (applied != checksum)
                {
                    throw new ModelAsDataException(ErrorCode.Conflict,
                        $"Migration {name} was applied with checksum {applied[..12]}…, but the script now has {checksum[..12]}…: applied migrations must not change; add a new numbered script instead.");
                }

                continue;
            }

            await connection.ExecuteAsync(new CommandDefinition(script, transaction: transaction, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition(
                "INSERT INTO mad_schema_migrations (name, checksum, applied_at) VALUES (@name, @checksum, @at)",
                new { name, checksum, at = SqliteTime.Now() }, transaction, cancellationToken: cancellationToken));
            await transaction.CommitAsync(cancellationToken);
        }
    }

    /// <summary>The names of the scripts this build ships, in the order they apply.</summary>
    internal static IReadOnlyList<string> ScriptNames => Scripts().Select(s => s.Name).ToList();

    private static IEnumerable<(string Name, string Script)> Scripts()
    {
        var assembly = Assembly.GetExecutingAssembly();
        foreach (var resource in assembly.GetManifestResourceNames().Where(r => r.StartsWith(ResourcePrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            using var reader = new StreamReader(assembly.GetManifestResourceStream(resource)!);
            yield return (resource[ResourcePrefix.Length..], reader.ReadToEnd());
        }
    }
}

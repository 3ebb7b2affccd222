namespace ModelAsData.Postgres.Migrations;

/// <summary>The migration runner's own statements.</summary>
internal static class MigrationSql
{
    /// <summary>
    /// Serialises migrations of one database (advisory locks are per database) with
    /// <see cref="Protocol.AdvisoryLocks.Migrations"/>. Released at the end of each script's transaction.
    /// </summary>
    public const string Lock = "SELECT pg_advisory_xact_lock(@key)";

    /// <summary>The journal must exist before the first script runs, so the runner creates it (under the lock).</summary>
    public const string CreateJournal = """
        CREATE SCHEMA IF NOT EXISTS mad;
        CREATE TABLE IF NOT EXISTS mad.schema_migrations (
          name text PRIMARY KEY,
          checksum text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now(),
          applied_by text NOT NULL DEFAULT session_user
        );
        """;

    public const string Applied = "SELECT name AS Name, checksum AS Checksum FROM mad.schema_migrations";

    public const string Record = "INSERT INTO mad.schema_migrations (name, checksum) VALUES (@name, @checksum)";
}

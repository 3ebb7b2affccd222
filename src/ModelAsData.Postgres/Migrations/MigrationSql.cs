namespace ModelAsData.Postgres.Migrations;

/// <summary>The migration runner's own statements.</summary>
internal static class MigrationSql
{
    /// <summary>
    /// Serialises migrations of one database (advisory locks are per database) with
    /// <see cref="Protocol.AdvisoryLocks.Migrations"/>. Released at the end of each script's transaction.
    /// </summary>
    public const string Lock = "SELECT pg_catalog.pg_advisory_xact_lock(@key)";

    /// <summary>
    /// Caps every lock wait of the script's transaction, the lock above included: its key is public and any login may
    /// hold it (or a lock on a mad table a script alters), and <c>mad db migrate</c> must not wait for it forever.
    /// </summary>
    public const string LockTimeout = "SELECT pg_catalog.set_config('lock_timeout', @timeout, true)";

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

using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres;

/// <summary>
/// Tells a connection that reaches PostgreSQL itself from one that reaches a connection pooler in front of it
/// (PgBouncer, Supavisor, RDS Proxy, pgcat). The sidecar needs a server session of its own for as long as it runs:
/// it LISTENs for wake-ups, and the session advisory locks it holds are how callers know it is alive and when their
/// answer is written. A pooler in transaction mode hands the server session to another client after every
/// transaction, so those locks and that LISTEN would land on a stranger's session. Applications may use the pooler;
/// <c>mad serve</c> must not.
/// </summary>
/// <remarks>
/// Two signs, each decisive, neither depending on which server session a pooler happens to hand out:
/// <list type="number">
/// <item>The startup parameters every sidecar session sends (<c>search_path</c>, <c>options</c>) are refused with
/// 08P01: PostgreSQL accepts any setting there; PgBouncer before 1.20 (and later ones unless told to track them)
/// answers "unsupported startup parameter".</item>
/// <item>The backend process id the session announced at startup (BackendKeyData, the key cancel requests carry) is
/// not <c>pg_backend_pid()</c>: a pooler answers the startup itself, with a key of its own, because the client's
/// connection is not bound to one server session. PostgreSQL always announces its own pid.</item>
/// </list>
/// Stateless and thread-safe.
/// </remarks>
public static class PostgresDirectConnection
{
    /// <summary>
    /// Opens a connection of <paramref name="dataSource"/> and throws <see cref="ErrorCode.NotSupported"/> when it
    /// reaches a pooler, saying to use a direct connection string; other connection failures are thrown as they are
    /// (<see cref="NpgsqlException"/>) for the caller to map.
    /// </summary>
    public static async Task RequireAsync(NpgsqlDataSource dataSource, string who, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        NpgsqlConnection connection;
        try
        {
            connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ProtocolViolation)
        {
            throw Pooled(dataSource, who, $"it refused the startup parameters a session of its own accepts: {e.MessageText}", e);
        }

        await using (connection.ConfigureAwait(false))
        {
            await using var command = new NpgsqlCommand("SELECT pg_catalog.pg_backend_pid()", connection);
            var serverPid = (int)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            if (serverPid != connection.ProcessID)
            {
                throw Pooled(dataSource, who,
                    $"the session announced backend pid {connection.ProcessID} at startup, but the server session that answers is pid {serverPid}", null);
            }
        }
    }

    private static ModelAsDataException Pooled(NpgsqlDataSource dataSource, string who, string sign, Exception? inner) =>
        new(ErrorCode.NotSupported,
            $"{who} is connected to {PostgresErrors.Describe(dataSource.ConnectionString)} through a connection pooler ({sign}). " +
            $"{who} needs a session of its own (LISTEN for wake-ups, session advisory locks that tell callers it is alive), which a pooler " +
            "hands to other clients: point --db at PostgreSQL itself, the host and port the pooler forwards to (the \"direct connection\" " +
            "string of a managed database, e.g. port 5432 rather than PgBouncer's 6432). Applications keep using the pooler.",
            inner);
}

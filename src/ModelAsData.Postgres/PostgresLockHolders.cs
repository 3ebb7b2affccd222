using Npgsql;

namespace ModelAsData.Postgres;

/// <summary>
/// Names the sessions holding an advisory lock that a statement gave up waiting for (SQLSTATE 55P03
/// lock_not_available, past the session's <c>lock_timeout</c>): anyone who can connect may take one of mad's keys
/// (they are public), so the warning says who, with pid and role, for an administrator to end that session.
/// </summary>
public static class PostgresLockHolders
{
    /// <summary>Whether <paramref name="e"/> is a lock wait that ran out (55P03).</summary>
    public static bool IsLockTimeout(Exception e) => e is PostgresException { SqlState: PostgresErrorCodes.LockNotAvailable };

    /// <summary>
    /// The holders of bigint advisory lock <paramref name="key"/> (null: of every bigint key but the migrator's, the
    /// keys a drain locks while it scores them), on <paramref name="connection"/>, which must not be in a failed
    /// transaction. A failure to ask is said in the text, never thrown: this only explains another error.
    /// </summary>
    public static async Task<string> DescribeAsync(NpgsqlConnection connection, long? key, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = new NpgsqlCommand(LockSql.BigintHolders, connection)
            {
                Parameters = { new() { Value = (object?)key ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint }, new() { Value = Protocol.AdvisoryLocks.Migrations } },
            };
            return (string)(await command.ExecuteScalarAsync(cancellationToken))!;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            return $"unknown (pg_locks could not be read: {e.Message})";
        }
    }
}

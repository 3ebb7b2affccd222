namespace ModelAsData.Postgres;

/// <summary>
/// Who holds a bigint-keyed advisory lock that a statement of mad gave up waiting for (SQLSTATE 55P03, the sessions'
/// <c>lock_timeout</c>), for the warning that names them: the C# twin of <c>mad.advisory_lock_holders</c> in
/// sql/postgres/010_lock_timeouts.sql, which is granted to no one. pg_locks and pg_stat_activity's pid, usename and
/// application_name are visible to every role.
/// </summary>
internal static class LockSql
{
    /// <summary>
    /// Holders of bigint-keyed advisory locks ($1: one key, or NULL for every bigint key but the migrator's, the space
    /// of the keys a drain locks while it scores them), other than this session: one line, or "nobody now".
    /// </summary>
    public const string BigintHolders = """
        SELECT coalesce(pg_catalog.string_agg(pg_catalog.format('pid %s (role %s, application %s, %s)', l.pid,
                                                                coalesce(a.usename::text, '?'), coalesce(pg_catalog.quote_literal(a.application_name), '?'), l.mode),
                                              '; ' ORDER BY l.pid),
                        'nobody now (it was released)')
        FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid() AND l.objsubid = 1
          AND CASE WHEN $1::bigint IS NULL THEN (l.classid::bigint << 32 | l.objid::bigint) <> $2::bigint
                   ELSE (l.classid::bigint << 32 | l.objid::bigint) = $1::bigint END
        """;
}

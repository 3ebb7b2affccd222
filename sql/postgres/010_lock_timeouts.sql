-- Lock waits the sidecar cannot be stalled by (issue 12, item 8), and mad.stream_lag's name check (below).
--
-- Advisory-lock keys are public (the table in 001_schemas_and_roles.sql), and pg_advisory_lock needs no privilege: any
-- login can take mad.lock_key('stream_notify') or ('stream_poll') and hold it, and mad.stream_set_notify, which waits
-- on both, then waited forever, with the stream worker stuck behind it. The sidecar's sessions now start with a
-- lock_timeout (a startup parameter, PostgresConnectionString.PinLockTimeout), and the waits here say, when it
-- runs out, which lock it was and who holds it: SQLSTATE 55P03 lock_not_available, the holders' pids and roles from
-- pg_locks and pg_stat_activity, and the statement an administrator runs to end such a session. The sidecar logs that,
-- tries again later and keeps streaming. Where a pooler dropped the startup parameter (the session has no
-- lock_timeout), stream_set_notify caps its own wait at 10 s for the rest of its transaction.

-- Who holds an advisory lock, for a message: 'pid 123 (role mallory, application psql, ExclusiveLock)', several
-- joined with '; ', or 'nobody now (it was released)'. For a two-int key (class, object) pass objsubid 2; for a
-- bigint key k pass class = k >> 32, object = k & 0xffffffff and objsubid 1. The caller's own session is left out.
-- pg_locks and pg_stat_activity's pid, usename and application_name are visible to every role, so this names
-- holders for a non-superuser owner too.
CREATE FUNCTION mad.advisory_lock_holders(class bigint, object bigint, objsubid int) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce(pg_catalog.string_agg(pg_catalog.format('pid %s (role %s, application %s, %s)', l.pid,
                                                          coalesce(a.usename::text, '?'), coalesce(pg_catalog.quote_literal(a.application_name), '?'), l.mode),
                                        '; ' ORDER BY l.pid),
                  'nobody now (it was released)')
  FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
  WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()
    AND l.classid::bigint = class AND l.objid::bigint = object AND l.objsubid = advisory_lock_holders.objsubid;
$$;

-- Raises 55P03 for a wait on the named two-int advisory lock (mad.lock_key(lock_name), object) that ran out.
CREATE FUNCTION mad.raise_lock_timeout(lock_name text, object int, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'Gave up waiting (lock_timeout %) to %: advisory lock % (key %, %) is held by %.',
    pg_catalog.current_setting('lock_timeout'), action, lock_name, mad.lock_key(lock_name), object,
    mad.advisory_lock_holders(mad.lock_key(lock_name), object, 2)
    USING ERRCODE = 'lock_not_available',
          HINT = 'Only sidecars take this lock, for moments. A session of any other role holding it stalls streaming: '
                 || 'an administrator can end it with SELECT pg_terminate_backend(<pid>); the sidecar tries again on its own.';
END
$$;

-- As in 006_streaming.sql, with each lock wait bounded and explained (see the header).
CREATE OR REPLACE FUNCTION mad.stream_set_notify(notify boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  poll_key constant int := mad.lock_key('stream_poll');
  polling boolean := EXISTS (
    SELECT FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.classid = poll_key::oid AND l.objid = 0 AND l.objsubid = 2);
  binding mad.prediction_tables;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  IF pg_catalog.current_setting('lock_timeout') = '0' THEN
    PERFORM pg_catalog.set_config('lock_timeout', '10s', true); -- no cap on the session: a pooler dropped it
  END IF;
  IF notify AND polling THEN
    PERFORM pg_catalog.pg_advisory_unlock_shared(poll_key, 0);
  ELSIF NOT notify AND NOT polling THEN
    BEGIN
      PERFORM pg_catalog.pg_advisory_lock_shared(poll_key, 0);
    EXCEPTION WHEN lock_not_available THEN
      PERFORM mad.raise_lock_timeout('stream_poll', 0, 'stop writers NOTIFYing mad_rows');
    END;
  END IF;
  BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(mad.lock_key('stream_notify'), 0);
  EXCEPTION WHEN lock_not_available THEN
    PERFORM mad.raise_lock_timeout('stream_notify', 0, CASE WHEN notify THEN 'have writers NOTIFY mad_rows' ELSE 'stop writers NOTIFYing mad_rows' END);
  END;
  IF notify AND NOT pg_catalog.pg_try_advisory_xact_lock(poll_key, 0) THEN
    RETURN false; -- another drain polls
  END IF;
  UPDATE mad.stream_wake w SET notify = stream_set_notify.notify WHERE w.id = 1 AND w.notify <> stream_set_notify.notify;
  IF FOUND THEN
    FOR binding IN SELECT * FROM mad.prediction_tables p WHERE p.watched ORDER BY p.name LOOP
      PERFORM mad.create_capture(binding, notify);
    END LOOP;
  END IF;
  RETURN notify;
END
$$;

-- Names (issue 12, "1,000 hostile identifiers", Hostile/HostileIdentifierTests): mad.stream_lag answered zeros for a
-- name that is no prediction table, and for a 64-byte name read the outbox of the table whose name is its first 63
-- bytes (format('mad_outbox.%I') then to_regclass truncates an identifier as PostgreSQL does). It now checks the
-- name first, as every other function taking a prediction table's name does: 42602 for an invalid one, P0002 for an
-- unknown one. Same signature, result and grants as in 006_streaming.sql.
CREATE OR REPLACE FUNCTION mad.stream_lag(table_name text)
RETURNS TABLE (waiting bigint, oldest_age interval, rows_per_second double precision, error text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  SELECT o.waiting, o.oldest_age,
         (SELECT coalesce(sum(s.rows_per_second), 0) FROM mad.stream_stats s
          WHERE s.prediction_table = p.name AND s.reported_at > now() - interval '10 seconds'),
         p.stream_error
  FROM mad.require_prediction_table(table_name) p, mad.stream_outbox_lag(p.name) o;
$$;

-- Internal helpers: only definer functions, running as the schema owner, call them.
REVOKE ALL ON FUNCTION mad.advisory_lock_holders(bigint, bigint, int), mad.raise_lock_timeout(text, int, text) FROM PUBLIC;

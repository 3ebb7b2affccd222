-- A claim returns each request's shadow version itself. Since 025 the sidecar joined the claim's rows back to
-- mad.requests to read it, and the planner, which expects 1,000 rows from a function, answered that join with a hash
-- of the whole table: every claim scanned every request kept for request_retention_hours (24 h by default), so one
-- CALL mad.predict took ~4 ms on a new database and 60–80 ms on one holding 40,000 old requests.
-- The body is 011's with shadow_version in the result; ROWS says how many a claim returns at most.
DROP FUNCTION mad.claim_requests(text, int, boolean);

CREATE FUNCTION mad.claim_requests(sidecar text, max_rows int, scan boolean)
RETURNS TABLE (id bigint, kind text, reference text, model text, version int, features text, shadow_version int)
LANGUAGE plpgsql SECURITY DEFINER ROWS 256 SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  me text := claim_requests.sidecar;
  notified bigint;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'answer requests');
  IF claim_requests.scan THEN
    WITH expired AS (
      UPDATE mad.requests r
      SET status = 'expired', answered_at = clock_timestamp(), error_code = '57M01',
          error = format('No sidecar answered request %s for %s in time (it expired at %s): start one with `mad serve --db ...` and make sure it stays up.',
                         r.id, r.reference, r.expires_at)
      WHERE r.status = 'pending' AND r.expires_at <= clock_timestamp()
      RETURNING r.id, r.kind)
    SELECT count(pg_catalog.pg_notify('mad_reply', json_build_object('id', e.id, 'status', 'expired')::text)) INTO STRICT notified
    FROM expired e WHERE e.kind = 'async';
    -- Running requests of a sidecar that is gone go back to the queue (an async caller still waits for them).
    UPDATE mad.requests r SET status = 'pending', sidecar = NULL, claimed_at = NULL
    WHERE r.status = 'running' AND r.sidecar IS DISTINCT FROM me AND r.kind = 'async'
      AND NOT EXISTS (SELECT FROM mad.request_workers w WHERE w.sidecar = r.sidecar AND mad.ticket_held(coalesce(w.life, w.ticket)));
  END IF;

  RETURN QUERY
    UPDATE mad.requests r SET status = 'running', sidecar = me, claimed_at = clock_timestamp()
    WHERE r.id IN (
      SELECT q.id FROM mad.requests q
      WHERE q.status = 'pending' AND q.expires_at > clock_timestamp()
        AND (q.sidecar = me OR (claim_requests.scan AND (q.sidecar IS NULL
             OR NOT EXISTS (SELECT FROM mad.request_workers w WHERE w.sidecar = q.sidecar AND mad.ticket_held(coalesce(w.life, w.ticket))))))
      ORDER BY q.id
      LIMIT claim_requests.max_rows
      FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.kind, r.reference, r.model, r.version, r.features::text, r.shadow_version;
END
$$;

REVOKE ALL ON FUNCTION mad.claim_requests(text, int, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.claim_requests(text, int, boolean) TO mad_sidecar;

-- Online requests: the worker's advisory locks cannot be held against it (issue 13, the trust boundary of issue 12).
--
-- Advisory locks need no privilege and pg_locks shows every held one, so any login can read the request-ticket key's
-- numbers and lock them. Three attacks worked before this file, each a test in Hostile/RequestTicketTests:
-- - Tickets came from a sequence, and the worker waited for its next one (pg_advisory_lock): a login that locked the
--   next few hundred numbers stalled every answer, and the callers failed. The worker now takes a random number it
--   can lock at once (mad.take_ticket), trying another if someone holds that one.
-- - A caller waits for its answer by queueing a shared lock behind the worker's ticket. A login that queued an
--   exclusive lock there took the ticket when the worker let it go, and the callers behind it waited for that login
--   until their timeout. A caller now waits in slices of at most 100 ms and reads its request between them: an
--   answer reaches it within a slice whoever holds the ticket, and an honest wake-up is as immediate as before.
-- - A sidecar is alive while its life lock is held. A login that queued for that lock inherited it when the sidecar
--   stopped, and calls were assigned to the stopped sidecar until their timeout instead of failing at once. The lock
--   now counts only while its sidecar has not said it stopped (mad.sidecars.stopped_at) and its heartbeat is recent
--   (mad.settings sidecar_presumed_dead_seconds): a sidecar killed without a word is judged by its lock as before,
--   and if a login took that lock over, by its heartbeat within a minute.

INSERT INTO mad.settings (name, value, description) VALUES
  ('sidecar_presumed_dead_seconds', '60', 'A sidecar whose heartbeat is older than this many seconds no longer answers online requests, whoever holds its locks. Keep it above the sidecars'' heartbeat interval (10 s by default).');

-- A ticket nobody else holds: a random number in the request-ticket key space, locked without waiting.
CREATE FUNCTION mad.take_ticket() RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = mad, pg_temp AS $$
DECLARE
  candidate bigint;
BEGIN
  FOR attempt IN 1..1000 LOOP
    candidate := 1 + floor(pg_catalog.random() * 2147483646)::bigint;
    IF pg_catalog.pg_try_advisory_lock(mad.lock_key('request_ticket'), mad.ticket_key(candidate)) THEN
      RETURN candidate;
    END IF;
  END LOOP;
  RAISE EXCEPTION 'Could not take a request ticket: 1,000 random advisory-lock numbers under key % were all held.', mad.lock_key('request_ticket')
    USING ERRCODE = 'lock_not_available', HINT = 'Some session holds a great many advisory locks: look for it in pg_locks and end it with pg_terminate_backend.';
END
$$;
REVOKE ALL ON FUNCTION mad.take_ticket() FROM PUBLIC;

-- Held by a sidecar that has not stopped: the lock alone can be inherited by whoever queued for it.
CREATE OR REPLACE FUNCTION mad.ticket_held(ticket bigint) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = mad, pg_temp AS $$
  SELECT NOT pg_catalog.pg_try_advisory_xact_lock_shared(mad.lock_key('request_ticket'), mad.ticket_key(ticket))
     AND NOT EXISTS (
       SELECT FROM mad.request_workers w JOIN mad.sidecars s ON s.id = w.sidecar
       WHERE ticket IN (w.life, w.ticket)
         AND (s.stopped_at IS NOT NULL
              OR s.heartbeat_at < pg_catalog.now() - mad.setting_int('sidecar_presumed_dead_seconds', 60) * interval '1 second'));
$$;

-- As in 011, except that the new ticket comes from mad.take_ticket.
CREATE OR REPLACE FUNCTION mad.answer_requests(sidecar text, answers jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  new_ticket bigint;
  notified bigint;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'answer requests');
  WITH answered AS (
    UPDATE mad.requests r
    SET status = CASE WHEN a.value ? 'error' THEN 'failed' ELSE 'done' END,
        result = a.value -> 'result',
        error = a.value ->> 'error',
        error_code = CASE WHEN a.value ? 'error' THEN coalesce(a.value ->> 'code', 'XX000') END,
        answered_at = clock_timestamp()
    FROM jsonb_array_elements(answer_requests.answers) a
    WHERE r.id = (a.value ->> 'id')::bigint AND r.status = 'running' AND r.sidecar = answer_requests.sidecar
    RETURNING r.id, r.kind, r.status)
  SELECT count(pg_catalog.pg_notify('mad_reply', json_build_object('id', x.id, 'status', x.status)::text)) INTO STRICT notified
  FROM answered x WHERE x.kind = 'async';
  new_ticket := mad.take_ticket();
  UPDATE mad.request_workers w SET ticket = new_ticket, backend_pid = pg_catalog.pg_backend_pid(), armed_at = clock_timestamp()
  WHERE w.sidecar = answer_requests.sidecar;
  RETURN new_ticket;
END
$$;

-- As in 011, except that the life lock and the first ticket come from mad.take_ticket.
CREATE OR REPLACE FUNCTION mad.arm_request_worker(sidecar text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  new_life bigint;
  new_ticket bigint;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'answer requests');
  new_life := mad.take_ticket();
  new_ticket := mad.take_ticket();
  -- Forget workers whose session is gone, so choosing a live one stays cheap.
  DELETE FROM mad.request_workers w WHERE w.sidecar <> arm_request_worker.sidecar AND NOT mad.ticket_held(coalesce(w.life, w.ticket));
  INSERT INTO mad.request_workers AS w (sidecar, ticket, backend_pid, life)
  VALUES (arm_request_worker.sidecar, new_ticket, pg_catalog.pg_backend_pid(), new_life)
  ON CONFLICT (sidecar) DO UPDATE SET ticket = EXCLUDED.ticket, backend_pid = EXCLUDED.backend_pid, life = EXCLUDED.life, armed_at = clock_timestamp();
  -- Claimed by this sidecar's previous session, which ended before it answered: this session claims them again.
  UPDATE mad.requests r SET status = 'pending', claimed_at = NULL
  WHERE r.status = 'running' AND r.sidecar = arm_request_worker.sidecar;
  RETURN new_ticket;
END
$$;

-- As in 011, except that it waits in slices of at most 100 ms and reads its request between them.
CREATE OR REPLACE FUNCTION mad.await_request(request_id bigint)
RETURNS TABLE (status text, result jsonb, error text, error_code text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp SET lock_timeout = 0 AS $$
#variable_conflict use_column
DECLARE
  r mad.requests%ROWTYPE;
  seen record;
  waited_ticket bigint;
  current_ticket bigint;
  remaining_ms bigint;
BEGIN
  LOOP
    -- The request and its sidecar's ticket in one snapshot: read apart, the answer could commit in between, and we
    -- would wait on the new ticket, which nobody releases until the next answer.
    SELECT q AS req, w.ticket AS ticket INTO seen FROM mad.requests q LEFT JOIN mad.request_workers w ON w.sidecar = q.sidecar
    WHERE q.id = await_request.request_id;
    IF FOUND THEN
      r := seen.req;
      current_ticket := seen.ticket;
    ELSE
      RAISE EXCEPTION 'There is no request %.', await_request.request_id USING ERRCODE = 'no_data_found';
    END IF;
    IF r.requested_by <> mad.caller_role() AND NOT pg_catalog.pg_has_role(mad.caller_role(), 'mad_admin', 'MEMBER') THEN
      RAISE EXCEPTION 'permission denied to read request %: it belongs to %', r.id, quote_ident(r.requested_by) USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF r.status IN ('done', 'failed', 'expired') THEN
      RETURN QUERY SELECT r.status, r.result, r.error, r.error_code;
      RETURN;
    END IF;

    remaining_ms := ceil(extract(epoch FROM r.expires_at - clock_timestamp()) * 1000)::bigint;
    IF remaining_ms <= 0 THEN
      UPDATE mad.requests q SET status = 'expired', answered_at = clock_timestamp(), error_code = '57M01',
        error = format('Sidecar %s did not answer request %s for %s within %s ms (mad.settings predict_timeout_ms). It may be overloaded or stuck: check its log, or start another with `mad serve`.',
                       coalesce(r.sidecar, '(none)'), r.id, r.reference, mad.setting_int('predict_timeout_ms', 10000))
      WHERE q.id = r.id AND q.status IN ('pending', 'running')
      RETURNING q.status, q.error, q.error_code INTO r.status, r.error, r.error_code;
      IF FOUND THEN
        RETURN QUERY SELECT r.status, NULL::jsonb, r.error, r.error_code;
        RETURN;
      END IF;
      CONTINUE; -- answered meanwhile
    END IF;

    IF r.kind = 'async' AND (current_ticket IS NULL OR (current_ticket = waited_ticket AND NOT mad.ticket_held(current_ticket))) THEN
      -- Assigned to no live sidecar: it waits for one's scan (a killed sidecar's async requests are re-queued), so
      -- look again shortly rather than fail.
      PERFORM pg_catalog.pg_sleep(least(0.05, remaining_ms / 1000.0));
      waited_ticket := NULL;
      CONTINUE;
    END IF;
    IF current_ticket IS NULL OR (current_ticket = waited_ticket AND NOT mad.ticket_held(current_ticket)) THEN
      -- The ticket we waited on was released without a new one being published: the worker's session ended.
      UPDATE mad.requests q SET status = 'failed', answered_at = clock_timestamp(), error_code = '57M02',
        error = format('Sidecar %s stopped (its database session ended) before it answered request %s for %s. Start `mad serve` again (and check its log), then retry.',
                       coalesce(r.sidecar, '(none)'), r.id, r.reference)
      WHERE q.id = r.id AND q.status IN ('pending', 'running')
      RETURNING q.status, q.error, q.error_code INTO r.status, r.error, r.error_code;
      IF FOUND THEN
        RETURN QUERY SELECT r.status, NULL::jsonb, r.error, r.error_code;
        RETURN;
      END IF;
      CONTINUE;
    END IF;

    waited_ticket := current_ticket;
    BEGIN
      -- A slice, not the whole deadline: whoever queued for the ticket ahead of us may hold it next.
      PERFORM pg_catalog.set_config('lock_timeout', least(remaining_ms, 100)::text, true);
      -- Transaction-level: nothing stays on the session (a pooled one, behind PgBouncer) if the wait is cut short.
      PERFORM pg_catalog.pg_advisory_xact_lock_shared(mad.lock_key('request_ticket'), mad.ticket_key(current_ticket));
    EXCEPTION WHEN lock_not_available THEN
      NULL; -- the slice ended: the next turn reads the request again (and expires it at the deadline)
    END;
  END LOOP;
END
$$;

-- Online requests: NOTIFY mad_requests is a wake-up only, and features have a size limit (issue 12, items 3 and 8).
--
-- Any role that can connect may LISTEN on a channel and NOTIFY on it: PostgreSQL has no privilege for either. 005
-- sent a request whole in its notification (features included, for the sidecar to score it without reading the
-- table), so a listener read everyone's features, and a forged payload was scored and answered as if it were the
-- request it named. Now the payload is only the id of the sidecar the request is assigned to (or '' for none): a
-- sidecar woken by it claims its requests from the table (mad.claim_requests), and answers only the requests it
-- claimed (mad.answer_requests takes status 'running' rows of its own, no longer 'pending' ones). A forged
-- notification costs at most one extra claim that finds nothing. mad_reply keeps its {"id", "status"} payload:
-- readers read their row (mad.requests, whose row security shows callers only their own).
--
-- mad.submit_request refuses features larger than mad.settings max_features_bytes (1 MiB by default), measured as
-- the size of the jsonb value, before anything is recorded.
--
-- Liveness (issue 13). A worker's ticket moves with every batch of answers, so "is the ticket in
-- mad.request_workers held?" raced with it: the row was read in one snapshot, the worker published a new ticket and
-- released the old one, and the try-lock then found the old one free. With two or more clients CALL mad.predict
-- failed with 55M03 ("No sidecar is running") while the sidecar answered. Now every worker session also holds a
-- *life* lock for as long as it lives: a number from mad.request_tickets taken once at arm time, in the same lock
-- space, published in mad.request_workers.life and never moved. Whether a sidecar is alive is asked of its life
-- lock (submit_request, claim_requests, arm_request_worker); the moving ticket only wakes waiters, as before. A row
-- of a worker armed before this file (life NULL) is judged by its ticket until that worker re-arms. A new session of
-- a sidecar takes back the requests its previous session had claimed and not answered, so their callers get an
-- answer instead of a timeout.
--
-- Through a transaction-mode pooler (PgBouncer; issue 13) a caller's session is shared: nothing a caller runs leaves
-- session state. The liveness try-lock (mad.ticket_held) and the wait on a ticket (mad.await_request) take
-- transaction-level advisory locks (shared, on numbers the workers never lock again), so a cancelled wait leaves no
-- lock behind; SETs were already SET LOCAL. mad.await_request also waits for an async request (SELECT * FROM
-- mad.await_request(id), from any transaction) instead of failing it when no live sidecar holds it yet.

INSERT INTO mad.settings (name, value, description) VALUES
  ('max_features_bytes', '1048576', 'The largest features (jsonb size, bytes) CALL mad.predict and mad.predict_async accept.');

ALTER TABLE mad.request_workers ADD COLUMN life bigint;
COMMENT ON COLUMN mad.request_workers.life IS 'A lock the worker session holds for as long as it lives (key as its ticket''s): held means alive.';

-- As in 005, except: the size limit, and the notification carries the assignee's id only.
CREATE OR REPLACE FUNCTION mad.submit_request(reference text, features jsonb, kind text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text;
  target text;
  found_version int;
  found_status text;
  assignee text;
  new_id bigint;
  ttl interval;
  features_bytes int;
  max_bytes bigint;
BEGIN
  IF submit_request.kind IS NULL OR submit_request.kind NOT IN ('call', 'async') THEN
    RAISE EXCEPTION 'A request is of kind call or async, not %.', coalesce(quote_literal(submit_request.kind), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT (pg_catalog.pg_has_role(mad.caller_role(), 'mad_user', 'MEMBER') OR pg_catalog.pg_has_role(mad.caller_role(), 'mad_admin', 'MEMBER')) THEN
    RAISE EXCEPTION 'permission denied to request predictions: role % needs role mad_user', quote_ident(mad.caller_role())
      USING ERRCODE = 'insufficient_privilege', HINT = format('An administrator can run: GRANT mad_user TO %I;', mad.caller_role());
  END IF;
  -- Before anything else reads them: the size of the value as stored (no copy, no conversion).
  features_bytes := pg_catalog.pg_column_size(submit_request.features);
  max_bytes := mad.setting_int('max_features_bytes', 1048576);
  IF features_bytes > max_bytes THEN
    RAISE EXCEPTION 'Features of % bytes are too large: the limit is % bytes (mad.settings max_features_bytes).', features_bytes, max_bytes
      USING ERRCODE = '22M01',
            HINT = 'Send fewer or smaller values, or an administrator raises the limit: UPDATE mad.settings SET value = ''<bytes>'' WHERE name = ''max_features_bytes'';';
  END IF;
  IF submit_request.reference IS NULL OR length(submit_request.reference) > 200 THEN
    RAISE EXCEPTION 'Invalid model reference %: use name, name@alias or name@version.', coalesce(quote_literal(left(submit_request.reference, 200)), 'NULL')
      USING ERRCODE = 'invalid_name';
  END IF;
  model_name := split_part(submit_request.reference, '@', 1);
  IF strpos(submit_request.reference, '@') > 0 THEN
    target := substr(submit_request.reference, strpos(submit_request.reference, '@') + 1);
    IF target = '' OR strpos(target, '@') > 0 THEN
      RAISE EXCEPTION 'Invalid model reference %: use name, name@alias or name@version.', quote_literal(submit_request.reference)
        USING ERRCODE = 'invalid_name';
    END IF;
  END IF;
  PERFORM mad.check_name(model_name, 'model');
  -- The common cases in one lookup; anything else (and every error message) through mad.resolve.
  IF target IS NULL OR target !~ '^[0-9]{1,9}$' THEN
    SELECT v.version, v.status INTO found_version, found_status
    FROM mad.aliases a JOIN mad.model_versions v ON v.model = a.model AND v.version = a.version
    WHERE a.model = model_name AND a.alias = coalesce(target, 'production');
  ELSE
    SELECT v.version, v.status INTO found_version, found_status
    FROM mad.model_versions v WHERE v.model = model_name AND v.version = target::int;
  END IF;
  IF found_version IS NULL THEN
    found_version := mad.resolve(model_name, target);
    SELECT v.status INTO found_status FROM mad.model_versions v WHERE v.model = model_name AND v.version = found_version;
  END IF;
  IF found_status <> 'ready' THEN
    RAISE EXCEPTION 'Version %@% is %: only ready versions can score.', model_name, found_version, found_status
      USING ERRCODE = '55M01', HINT = 'A running sidecar (`mad serve`) validates pending versions.';
  END IF;
  IF submit_request.features IS NULL OR jsonb_typeof(submit_request.features) <> 'object' THEN
    RAISE EXCEPTION 'Features must be a JSON object of model input names to values, e.g. {"float_input": [5.1, 3.5, 1.4, 0.2]}; got %.',
      coalesce(left(submit_request.features::text, 200), 'NULL')
      USING ERRCODE = '22M01';
  END IF;

  -- Alive is its life lock held: the ticket moves with every answer, and read here it may already be free.
  SELECT w.sidecar INTO assignee FROM mad.request_workers w
  WHERE mad.ticket_held(coalesce(w.life, w.ticket))
  ORDER BY pg_catalog.random() LIMIT 1;
  IF assignee IS NULL AND submit_request.kind = 'call' THEN
    RAISE EXCEPTION 'No sidecar is running for this database, so nothing can answer CALL mad.predict(%).', quote_literal(submit_request.reference)
      USING ERRCODE = '55M03',
            HINT = 'Start one beside the database with `mad serve --db "Host=...;Database=..."` (it scores requests), then retry; mad.predict_async requests wait for one.';
  END IF;

  ttl := CASE WHEN submit_request.kind = 'call'
              THEN mad.setting_int('predict_timeout_ms', 10000) * interval '1 millisecond'
              ELSE mad.setting_int('request_ttl_seconds', 300) * interval '1 second' END;
  INSERT INTO mad.requests (kind, reference, model, version, features, sidecar, expires_at)
  VALUES (submit_request.kind, submit_request.reference, model_name, found_version, submit_request.features, assignee, clock_timestamp() + ttl)
  RETURNING id INTO new_id;
  -- A wake-up only: whoever listens learns which sidecar has work, nothing of the request.
  PERFORM pg_catalog.pg_notify('mad_requests', coalesce(assignee, ''));
  RETURN new_id;
END
$$;

-- As in 005, except that only requests this sidecar claimed (status 'running') take its answers: a sidecar never
-- answers a request it did not read from the table.
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
  new_ticket := pg_catalog.nextval('mad.request_tickets');
  PERFORM pg_catalog.pg_advisory_lock(mad.lock_key('request_ticket'), mad.ticket_key(new_ticket));
  UPDATE mad.request_workers w SET ticket = new_ticket, backend_pid = pg_catalog.pg_backend_pid(), armed_at = clock_timestamp()
  WHERE w.sidecar = answer_requests.sidecar;
  RETURN new_ticket;
END
$$;

-- As in 005, plus: the life lock, and the requests a previous session of this sidecar claimed go back to it.
CREATE OR REPLACE FUNCTION mad.arm_request_worker(sidecar text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  new_life bigint := pg_catalog.nextval('mad.request_tickets');
  new_ticket bigint := pg_catalog.nextval('mad.request_tickets');
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'answer requests');
  PERFORM pg_catalog.pg_advisory_lock(mad.lock_key('request_ticket'), mad.ticket_key(new_life));
  PERFORM pg_catalog.pg_advisory_lock(mad.lock_key('request_ticket'), mad.ticket_key(new_ticket));
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

-- As in 005, except that a sidecar is gone when its life lock is free (not its ticket, which moves).
CREATE OR REPLACE FUNCTION mad.claim_requests(sidecar text, max_rows int, scan boolean)
RETURNS TABLE (id bigint, kind text, reference text, model text, version int, features text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
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
    RETURNING r.id, r.kind, r.reference, r.model, r.version, r.features::text;
END
$$;

-- As in 005, with a transaction-level try-lock: nothing stays on the caller's (possibly pooled) session.
CREATE OR REPLACE FUNCTION mad.ticket_held(ticket bigint) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = mad, pg_temp AS $$
  SELECT NOT pg_catalog.pg_try_advisory_xact_lock_shared(mad.lock_key('request_ticket'), mad.ticket_key(ticket));
$$;

-- As in 005, except: the wait is a transaction-level lock, and an async request waits for a sidecar to pick it up.
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
      PERFORM pg_catalog.set_config('lock_timeout', remaining_ms::text, true);
      -- Transaction-level: nothing stays on the session (a pooled one, behind PgBouncer) if the wait is cut short.
      PERFORM pg_catalog.pg_advisory_xact_lock_shared(mad.lock_key('request_ticket'), mad.ticket_key(current_ticket));
    EXCEPTION WHEN lock_not_available THEN
      NULL; -- the deadline: the next turn of the loop expires the request
    END;
  END LOOP;
END
$$;


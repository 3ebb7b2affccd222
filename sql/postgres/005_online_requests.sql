-- Online scoring: requests answered by a sidecar, CALL mad.predict, mad.predict_async, and the prediction log.
--
-- A request is a row first (committed), NOTIFY mad_requests only wakes the sidecar it is assigned to. How
-- CALL mad.predict waits without polling: every sidecar's request worker always holds a session advisory lock on its
-- current *ticket* (published in mad.request_workers; the lock's key is (mad.lock_key('request_ticket'),
-- mad.ticket_key(ticket))). The procedure commits its request, then waits for a shared lock on the ticket of the
-- sidecar it assigned the request to. When the worker has written a batch of answers it takes a new ticket and
-- publishes it in the same transaction as the answers, then releases the old one: the waiting procedures wake at
-- once and read their answer. A worker whose session ends (killed sidecar) releases its ticket without publishing a
-- new one: that is how a waiter tells "answered" (the ticket moved) from "the sidecar died" (57M02).
-- CALL mad.predict with no sidecar running fails at once with 55M03; a request nobody answers in time, with 57M01.

INSERT INTO mad.settings (name, value, description) VALUES
  ('predict_timeout_ms', '10000', 'How long CALL mad.predict waits for its answer before it fails (ms).'),
  ('request_ttl_seconds', '300', 'How long a mad.predict_async request waits for a sidecar before it expires (s).'),
  ('request_retention_hours', '24', 'How long finished requests stay in mad.requests (h); mad.prediction_log keeps every prediction.');

CREATE TABLE mad.requests (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('call', 'async')),
  reference text NOT NULL,
  model text NOT NULL,
  version int NOT NULL,
  features jsonb NOT NULL CHECK (jsonb_typeof(features) = 'object'),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed', 'expired')),
  result jsonb,
  error text,
  error_code text,
  sidecar text,
  requested_by text NOT NULL DEFAULT mad.caller_role(),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  claimed_at timestamptz,
  answered_at timestamptz,
  expires_at timestamptz NOT NULL,
  FOREIGN KEY (model, version) REFERENCES mad.model_versions (model, version)
);

CREATE INDEX requests_open ON mad.requests (id) WHERE status IN ('pending', 'running');
CREATE INDEX requests_created ON mad.requests (created_at);

-- Callers read their own requests; admins and sidecars read all. The definer functions (owner) bypass the policy.
-- A policy runs as the reader, so current_user is the effective role (session_user would be the login, whatever role
-- it had switched to).
ALTER TABLE mad.requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY requests_read ON mad.requests FOR SELECT USING (
  requested_by = current_user
  OR pg_catalog.pg_has_role('mad_admin', 'MEMBER')
  OR pg_catalog.pg_has_role('mad_sidecar', 'MEMBER'));
GRANT SELECT ON mad.requests TO mad_admin, mad_user, mad_sidecar;

-- Unlogged: after a crash every worker re-arms anyway.
CREATE UNLOGGED TABLE mad.request_workers (
  sidecar text PRIMARY KEY,
  ticket bigint NOT NULL,
  backend_pid int NOT NULL,
  armed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
GRANT SELECT ON mad.request_workers TO mad_admin, mad_user, mad_sidecar;

CREATE SEQUENCE mad.request_tickets;

-- Every online prediction, from any door, for "which version said this". Written by the sidecars in batches (COPY).
CREATE TABLE mad.prediction_log (
  predicted_at timestamptz NOT NULL,
  door text NOT NULL CHECK (door IN ('call', 'async', 'http')),
  model text NOT NULL,
  version int NOT NULL,
  inputs_sha256 text NOT NULL,
  outputs jsonb,
  error text,
  request_id bigint,
  sidecar text NOT NULL
);
CREATE INDEX prediction_log_inputs ON mad.prediction_log (inputs_sha256);
CREATE INDEX prediction_log_model ON mad.prediction_log (model, version, predicted_at);
GRANT SELECT ON mad.prediction_log TO mad_admin, mad_sidecar;
GRANT INSERT ON mad.prediction_log TO mad_sidecar;

-- The hash the log records: sha256 of the features as jsonb text, so a DBA can look up any features:
--   SELECT * FROM mad.prediction_log WHERE inputs_sha256 = mad.inputs_hash('{"float_input": [5.1, 3.5, 1.4, 0.2]}');
CREATE FUNCTION mad.inputs_hash(features jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
  SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(features::text, 'UTF8')), 'hex');
$$;

-- The object of a ticket's advisory lock (its class is mad.lock_key('request_ticket')): the ticket folded into int4.
CREATE FUNCTION mad.ticket_key(ticket bigint) RETURNS int
LANGUAGE sql IMMUTABLE STRICT SET search_path = mad, pg_temp AS $$
  SELECT (ticket % 2147483647)::int;
$$;

-- True while some session holds the ticket: its worker is alive.
CREATE FUNCTION mad.ticket_held(ticket bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = mad, pg_temp AS $$
BEGIN
  IF pg_catalog.pg_try_advisory_lock_shared(mad.lock_key('request_ticket'), mad.ticket_key(ticket)) THEN
    PERFORM pg_catalog.pg_advisory_unlock_shared(mad.lock_key('request_ticket'), mad.ticket_key(ticket));
    RETURN false;
  END IF;
  RETURN true;
END
$$;

-- A worker (one session of a sidecar) takes a fresh ticket and holds it for as long as it lives.
CREATE FUNCTION mad.arm_request_worker(sidecar text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  new_ticket bigint := pg_catalog.nextval('mad.request_tickets');
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'answer requests');
  PERFORM pg_catalog.pg_advisory_lock(mad.lock_key('request_ticket'), mad.ticket_key(new_ticket));
  -- Forget workers whose session is gone (their tickets are free), so choosing a live one stays cheap.
  DELETE FROM mad.request_workers w WHERE w.sidecar <> arm_request_worker.sidecar AND NOT mad.ticket_held(w.ticket);
  INSERT INTO mad.request_workers AS w (sidecar, ticket, backend_pid)
  VALUES (arm_request_worker.sidecar, new_ticket, pg_catalog.pg_backend_pid())
  ON CONFLICT (sidecar) DO UPDATE SET ticket = EXCLUDED.ticket, backend_pid = EXCLUDED.backend_pid, armed_at = clock_timestamp();
  RETURN new_ticket;
END
$$;

-- Releases a ticket this session holds (after the answers that replaced it were committed).
CREATE FUNCTION mad.release_ticket(ticket bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'answer requests');
  RETURN pg_catalog.pg_advisory_unlock(mad.lock_key('request_ticket'), mad.ticket_key(ticket));
END
$$;

-- Claims pending requests for a sidecar: those assigned to it and, on a scan, unassigned ones and those of sidecars
-- that are gone. Expired requests are closed on a scan, with the reason.
CREATE FUNCTION mad.claim_requests(sidecar text, max_rows int, scan boolean)
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
      AND NOT EXISTS (SELECT FROM mad.request_workers w WHERE w.sidecar = r.sidecar AND mad.ticket_held(w.ticket));
  END IF;

  RETURN QUERY
    UPDATE mad.requests r SET status = 'running', sidecar = me, claimed_at = clock_timestamp()
    WHERE r.id IN (
      SELECT q.id FROM mad.requests q
      WHERE q.status = 'pending' AND q.expires_at > clock_timestamp()
        AND (q.sidecar = me OR (claim_requests.scan AND (q.sidecar IS NULL
             OR NOT EXISTS (SELECT FROM mad.request_workers w WHERE w.sidecar = q.sidecar AND mad.ticket_held(w.ticket)))))
      ORDER BY q.id
      LIMIT claim_requests.max_rows
      FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.kind, r.reference, r.model, r.version, r.features::text;
END
$$;

-- Deletes finished requests older than request_retention_hours, a bounded batch at a time (the sidecars call it about
-- once a minute); returns how many went.
CREATE FUNCTION mad.purge_requests(max_rows int DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  purged bigint;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'purge requests');
  DELETE FROM mad.requests r WHERE r.id IN (
    SELECT q.id FROM mad.requests q
    WHERE q.created_at < clock_timestamp() - mad.setting_int('request_retention_hours', 24) * interval '1 hour'
      AND q.status IN ('done', 'failed', 'expired')
    ORDER BY q.created_at
    LIMIT purge_requests.max_rows);
  GET DIAGNOSTICS purged = ROW_COUNT;
  RETURN purged;
END
$$;

-- Writes a batch of answers ([{"id": 1, "result": {...}} or {"id": 2, "error": "...", "code": "22M01"}]) to requests
-- this sidecar claimed, or that are assigned to it and were scored straight from their notification; NOTIFYs
-- mad_reply for async requests, and moves the worker to a new ticket in the same transaction; the caller then
-- releases the old ticket with mad.release_ticket, which wakes the procedures waiting on it.
CREATE FUNCTION mad.answer_requests(sidecar text, answers jsonb) RETURNS bigint
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
        claimed_at = coalesce(r.claimed_at, clock_timestamp()),
        answered_at = clock_timestamp()
    FROM jsonb_array_elements(answer_requests.answers) a
    WHERE r.id = (a.value ->> 'id')::bigint AND r.status IN ('pending', 'running') AND r.sidecar = answer_requests.sidecar
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

-- Records a request: checks the caller, the reference (it must resolve to a ready version) and the features'
-- shape, assigns it to a live sidecar, and wakes that sidecar. A 'call' request needs a live sidecar now.
CREATE FUNCTION mad.submit_request(reference text, features jsonb, kind text) RETURNS bigint
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
BEGIN
  IF submit_request.kind IS NULL OR submit_request.kind NOT IN ('call', 'async') THEN
    RAISE EXCEPTION 'A request is of kind call or async, not %.', coalesce(quote_literal(submit_request.kind), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT (pg_catalog.pg_has_role(mad.caller_role(), 'mad_user', 'MEMBER') OR pg_catalog.pg_has_role(mad.caller_role(), 'mad_admin', 'MEMBER')) THEN
    RAISE EXCEPTION 'permission denied to request predictions: role % needs role mad_user', quote_ident(mad.caller_role())
      USING ERRCODE = 'insufficient_privilege', HINT = format('An administrator can run: GRANT mad_user TO %I;', mad.caller_role());
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

  SELECT w.sidecar INTO assignee FROM mad.request_workers w
  WHERE mad.ticket_held(w.ticket)
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
  -- The wake-up carries the request itself when it fits, so the sidecar can score at once and claim it with its
  -- answer (one round trip fewer); else only the sidecar's id, and the sidecar claims it from the table.
  PERFORM pg_catalog.pg_notify('mad_requests', CASE
    WHEN assignee IS NOT NULL AND octet_length(submit_request.features::text) <= 6000 THEN
      json_build_object('s', assignee, 'id', new_id, 'k', submit_request.kind, 'r', submit_request.reference,
                        'm', model_name, 'v', found_version, 'f', submit_request.features::text)::text
    ELSE coalesce(assignee, '') END);
  RETURN new_id;
END
$$;

-- Waits for a request's answer without polling (see the top of this file); returns it, or why there is none.
-- Never raises for the request's own failure: the caller commits what it learnt (the request's final state) first.
CREATE FUNCTION mad.await_request(request_id bigint)
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
      PERFORM pg_catalog.pg_advisory_lock_shared(mad.lock_key('request_ticket'), mad.ticket_key(current_ticket));
      PERFORM pg_catalog.pg_advisory_unlock_shared(mad.lock_key('request_ticket'), mad.ticket_key(current_ticket));
    EXCEPTION WHEN lock_not_available THEN
      NULL; -- the deadline: the next turn of the loop expires the request
    END;
  END LOOP;
END
$$;

-- The async door: returns the request id at once; the answer is NOTIFY'd on mad_reply ({"id": …, "status": …}) and
-- stays readable in mad.requests. Works inside the caller's transaction (the request is seen when it commits).
CREATE FUNCTION mad.predict_async(model text, features jsonb) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  SELECT mad.submit_request(model, features, 'async');
$$;

-- The online door: commits the request (so a sidecar can see it), waits for the answer, returns it. It cannot be
-- SECURITY DEFINER or carry a SET clause, since PostgreSQL forbids COMMIT in such procedures: it runs as the caller,
-- names everything schema-qualified, and every table access goes through the definer functions above.
CREATE PROCEDURE mad.predict(model text, features jsonb, INOUT result jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
  request_id bigint;
  answer record;
BEGIN
  -- An explicit transaction that has written has an xid: say so before anything else. One that has not is
  -- refused by PostgreSQL itself at the COMMIT below (invalid_transaction_termination, 2D000), which the C#
  -- client turns into the same message; nothing was recorded either way.
  IF pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL THEN
    RAISE EXCEPTION 'CALL mad.predict cannot run inside an explicit transaction (or a function): it must commit its request so that a sidecar can see it.'
      USING ERRCODE = 'active_sql_transaction',
            HINT = 'Call it outside BEGIN ... COMMIT (autocommit), or use SELECT mad.predict_async(model, features) and LISTEN mad_reply, or the sidecar''s HTTP endpoint (`mad serve --http`, POST /v2/models/{name}/infer).';
  END IF;
  request_id := mad.submit_request(model, features, 'call');
  -- The request only lives as long as this call waits: it need not wait for a WAL flush.
  PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
  COMMIT;
  SELECT * INTO answer FROM mad.await_request(request_id);
  IF answer.status OPERATOR(pg_catalog.=) 'done' THEN
    result := answer.result;
    RETURN;
  END IF;
  COMMIT; -- keep the request's final state
  RAISE EXCEPTION USING MESSAGE = answer.error, ERRCODE = coalesce(answer.error_code, 'XX000');
END
$$;

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.answer_requests(text, jsonb), mad.arm_request_worker(text), mad.await_request(bigint),
  mad.claim_requests(text, integer, boolean), mad.inputs_hash(jsonb), mad.predict_async(text, jsonb),
  mad.purge_requests(integer), mad.release_ticket(bigint), mad.submit_request(text, jsonb, text),
  mad.ticket_held(bigint), mad.ticket_key(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.inputs_hash(jsonb) TO mad_admin;
GRANT EXECUTE ON FUNCTION mad.await_request(bigint), mad.predict_async(text, jsonb),
  mad.submit_request(text, jsonb, text) TO mad_admin, mad_user;
GRANT EXECUTE ON FUNCTION mad.answer_requests(text, jsonb), mad.arm_request_worker(text),
  mad.claim_requests(text, integer, boolean), mad.purge_requests(integer), mad.release_ticket(bigint) TO mad_sidecar;
REVOKE ALL ON PROCEDURE mad.predict(text, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE mad.predict(text, jsonb, jsonb) TO mad_admin, mad_user;

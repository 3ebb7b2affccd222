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

INSERT INTO mad.settings (name, value, description) VALUES
  ('max_features_bytes', '1048576', 'The largest features (jsonb size, bytes) CALL mad.predict and mad.predict_async accept.');

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

-- Online requests: a CALL mad.predict submits in one function, and mad.ticket_held asks about the ticket it is given
-- (issue 13, under load), quickly. pg_stat_statements at 16 clients (docs/ONLINE.md, "Where the time goes") gave the caller's
-- submit three costs besides its INSERT: choosing a live sidecar (mad.ticket_held: 0.30 ms mean, see below), and
-- mad.route_request (0.15 ms: a second definer call that read the request just inserted back, looked up its
-- deployment and updated the row for a key, a canary or a shadow).
--
-- mad.submit_request(reference, features, kind, key) is 011's with 051's routing applied before the INSERT (the same
-- rule: the alias's deployment, the key's bucket or a random draw for the canary and for the shadow, and the key kept),
-- so a request is one row version written once. mad.predict and mad.predict_async call it; 011's three-argument
-- submit_request and mad.route_request stay as they were for whoever calls them.
--
-- mad.ticket_held answered for the wrong ticket. 031's SQL body said `WHERE ticket IN (w.life, w.ticket)`, and in a
-- SQL function a column name wins over a parameter of the same name: `ticket` was request_workers.ticket, the test
-- always true, so a sidecar counted as dead as soon as ANY worker row belonged to a stopped sidecar or one whose
-- heartbeat was over sidecar_presumed_dead_seconds old (a killed sidecar's row stays until the next arm). Every
-- CALL mad.predict then failed with 55M03 "No sidecar is running" while a live sidecar answered: the once-seen
-- 55M03 under load. Now the parameter is named where it is meant (Requests/SidecarFaultTests). It is also
-- PL/pgSQL without a SET clause: a SQL function that is not inlined (a subquery keeps it from that) is planned again
-- each time the query calling it runs, 0.15 ms per submit here against ~5 µs cached; it is granted to nobody, so it
-- runs only inside the definer functions (whose search_path is pinned), and every name and operator in it is
-- schema-qualified, as 032 did for the other helpers.

CREATE OR REPLACE FUNCTION mad.ticket_held(ticket bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF pg_catalog.pg_try_advisory_xact_lock_shared(mad.lock_key('request_ticket'), mad.ticket_key(ticket_held.ticket)) THEN
    RETURN false;
  END IF;
  RETURN NOT EXISTS (
    SELECT FROM mad.request_workers w JOIN mad.sidecars s ON s.id OPERATOR(pg_catalog.=) w.sidecar
    WHERE (w.life OPERATOR(pg_catalog.=) ticket_held.ticket OR w.ticket OPERATOR(pg_catalog.=) ticket_held.ticket)
      AND (s.stopped_at IS NOT NULL
           OR s.heartbeat_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)
              (mad.setting_int('sidecar_presumed_dead_seconds', 60) OPERATOR(pg_catalog.*) pg_catalog.interval '1 second'))));
END
$$;

-- As in 011, plus the key and 051's routing (marked 057_2).
CREATE FUNCTION mad.submit_request(reference text, features jsonb, kind text, key text) RETURNS bigint
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
  deployed mad.deployments%ROWTYPE;  -- 057_2: routing
  routed_arm text := 'champion';
  routed_shadow int;
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

  -- 057_2: route_request's rule (051), applied before the INSERT instead of reading the row back and updating it.
  SELECT * INTO deployed FROM mad.deployments d
  WHERE d.model = model_name
    AND d.alias = CASE WHEN target IS NULL THEN 'production' WHEN target ~ '^[0-9]{1,9}$' THEN NULL ELSE target END;
  IF FOUND THEN
    IF deployed.canary_version IS NOT NULL AND coalesce(mad.bucket(deployed.seed, submit_request.key), random()) < deployed.canary_percent / 100 THEN
      found_version := deployed.canary_version;
      routed_arm := 'canary';
    END IF;
    IF deployed.shadow_version IS NOT NULL AND coalesce(mad.bucket(deployed.seed, submit_request.key), random()) < deployed.shadow_percent / 100 THEN
      routed_shadow := deployed.shadow_version;
    END IF;
  END IF;

  ttl := CASE WHEN submit_request.kind = 'call'
              THEN mad.setting_int('predict_timeout_ms', 10000) * interval '1 millisecond'
              ELSE mad.setting_int('request_ttl_seconds', 300) * interval '1 second' END;
  INSERT INTO mad.requests (kind, reference, model, version, features, sidecar, expires_at, arm, shadow_version, key)
  VALUES (submit_request.kind, submit_request.reference, model_name, found_version, submit_request.features, assignee, clock_timestamp() + ttl,
          routed_arm, routed_shadow, submit_request.key)
  RETURNING id INTO new_id;
  -- A wake-up only: whoever listens learns which sidecar has work, nothing of the request.
  PERFORM pg_catalog.pg_notify('mad_requests', coalesce(assignee, ''));
  RETURN new_id;
END
$$;

-- 017's mad.predict_async and mad.predict, except that they submit with the key (057_2) instead of routing after.
CREATE OR REPLACE FUNCTION mad.predict_async(model text, features jsonb, key text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  RETURN mad.submit_request(model, features, 'async', key);  -- 057_2
END
$$;

CREATE OR REPLACE PROCEDURE mad.predict(model text, features jsonb, INOUT result jsonb DEFAULT NULL, key text DEFAULT NULL)
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
  request_id := mad.submit_request(model, features, 'call', key);  -- 057_2: routed as it is inserted
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

REVOKE ALL ON FUNCTION mad.submit_request(text, jsonb, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.submit_request(text, jsonb, text, text) TO mad_admin, mad_user;

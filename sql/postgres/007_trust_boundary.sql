-- The trust boundary (issue 12, items 2 and 5): EXECUTE grants are the gate, a definer function judges its caller by
-- the effective role (SET ROLE included), and a prediction table's lifecycle belongs to its owner.
--
-- Before this, every mad function was granted EXECUTE to all three roles and the body checked session_user's
-- membership, which ignores SET ROLE: under PostgREST (an authenticator login that SET ROLEs per request) a web user
-- had the authenticator's rights. Now:
--   mad_admin    the admin functions (push_model, set_alias, rollback_alias, create_prediction_table) and the
--                caller functions;
--   mad_user     the caller functions: resolve, alias_at, require_model, refresh / watch / unwatch (of tables it
--                owns), stream_lag, predict, predict_async (and submit_request / await_request, which CALL mad.predict
--                runs as its caller);
--   mad_sidecar  the sidecar protocol (register / heartbeat / stop, claim and mark versions, task leases, request
--                workers, stream drains) plus resolve and setting_int, which it reads;
--   nobody       every internal helper (only definer functions, which run as the owner, call them).
-- mad_admin is not a member of mad_user (001 makes the three roles apart), so the caller functions are granted to both.
-- docs/SECURITY.md lists the same; IntegrationTests/Hostile/FunctionGrantTests.cs compares the catalog with it.

-- The role a call is judged by: the one SET ROLE chose, else the login. Inside a SECURITY DEFINER function
-- current_user is the owner, but the role setting still reports the caller's SET ROLE (and cannot be changed there).
CREATE FUNCTION mad.caller_role() RETURNS text
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = mad, pg_temp AS $$
  SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user::text ELSE pg_catalog.current_setting('role') END;
$$;

-- Audit columns record the effective role too (the functions insert without naming them).
ALTER TABLE mad.models ALTER COLUMN created_by SET DEFAULT mad.caller_role();
ALTER TABLE mad.model_versions ALTER COLUMN created_by SET DEFAULT mad.caller_role();
ALTER TABLE mad.aliases ALTER COLUMN updated_by SET DEFAULT mad.caller_role();
ALTER TABLE mad.alias_history ALTER COLUMN moved_by SET DEFAULT mad.caller_role();
ALTER TABLE mad.prediction_tables ALTER COLUMN created_by SET DEFAULT mad.caller_role();
ALTER TABLE mad.jobs ALTER COLUMN created_by SET DEFAULT mad.caller_role();
ALTER TABLE mad.requests ALTER COLUMN requested_by SET DEFAULT mad.caller_role();

-- A prediction table belongs to the role that created it: only that role (or a member of it) and mad_admin may
-- refresh, watch or unwatch it. Existing tables belong to their creator.
ALTER TABLE mad.prediction_tables ADD COLUMN owner text;
UPDATE mad.prediction_tables SET owner = created_by;
ALTER TABLE mad.prediction_tables ALTER COLUMN owner SET DEFAULT mad.caller_role(), ALTER COLUMN owner SET NOT NULL;

-- Callers read their own requests; admins and sidecars all. A policy runs as the reader, so current_user is the
-- effective role (session_user was the login, whatever role it had switched to).
DROP POLICY requests_read ON mad.requests;
CREATE POLICY requests_read ON mad.requests FOR SELECT USING (
  requested_by = current_user
  OR pg_catalog.pg_has_role('mad_admin', 'MEMBER')
  OR pg_catalog.pg_has_role('mad_sidecar', 'MEMBER'));

-- Raises unless the caller owns the binding (is its owner role or a member of it) or is a mad_admin.
CREATE FUNCTION mad.require_binding_owner(binding mad.prediction_tables, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  caller text := mad.caller_role();
BEGIN
  IF caller = binding.owner
     OR pg_catalog.pg_has_role(caller, 'mad_admin', 'MEMBER')
     OR (EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = binding.owner) AND pg_catalog.pg_has_role(caller, binding.owner, 'MEMBER')) THEN
    RETURN;
  END IF;
  RAISE EXCEPTION 'permission denied to %: prediction table % belongs to role %; role % needs to be that role or mad_admin',
    action, quote_literal(binding.name), quote_ident(binding.owner), quote_ident(caller)
    USING ERRCODE = 'insufficient_privilege',
          HINT = format('Its owner can run it, or an administrator can run: GRANT %I TO %I;', binding.owner, caller);
END
$$;

-- Watching puts triggers on the source: the caller needs the TRIGGER privilege on it (its owner has it).
CREATE FUNCTION mad.require_trigger_privilege(source regclass, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT pg_catalog.has_table_privilege(mad.caller_role(), source, 'TRIGGER') THEN
    RAISE EXCEPTION 'permission denied to %: role % needs the TRIGGER privilege on %', action, quote_ident(mad.caller_role()), source
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('The owner of the table can run: GRANT TRIGGER ON %s TO %I;', source, mad.caller_role());
  END IF;
END
$$;

-- The functions that judged session_user, now judging mad.caller_role() (same signatures and behaviour otherwise);
-- refresh, watch and unwatch also need the binding's owner, watch the TRIGGER privilege.

-- SECURITY DEFINER functions run as their owner: the caller is the effective role, mad.caller_role(). EXECUTE grants are
-- the gate; this check stays as a second one, with a message that names the role to grant.
CREATE OR REPLACE FUNCTION mad.require_role(needed text, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT pg_catalog.pg_has_role(mad.caller_role(), needed, 'MEMBER') THEN
    RAISE EXCEPTION 'permission denied to %: role % needs role %', action, quote_ident(mad.caller_role()), needed
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('An administrator can run: GRANT %I TO %I;', needed, mad.caller_role());
  END IF;
END
$$;

-- The caller may bind or refresh over a source only when it may read it itself: the sidecar reads for it.
CREATE OR REPLACE FUNCTION mad.require_source_access(source regclass, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT (pg_catalog.pg_has_role(mad.caller_role(), 'mad_user', 'MEMBER') OR pg_catalog.pg_has_role(mad.caller_role(), 'mad_admin', 'MEMBER')) THEN
    RAISE EXCEPTION 'permission denied to %: role % needs role mad_user or mad_admin', action, quote_ident(mad.caller_role())
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('An administrator can run: GRANT mad_user TO %I;', mad.caller_role());
  END IF;
  IF NOT pg_catalog.has_table_privilege(mad.caller_role(), source, 'SELECT') THEN
    RAISE EXCEPTION 'permission denied to %: role % may not SELECT from %', action, quote_ident(mad.caller_role()), source
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('The owner of the table can run: GRANT SELECT ON %s TO %I;', source, mad.caller_role());
  END IF;
END
$$;

-- Moves (or creates) an alias; only a ready version may be served. Returns the version it now points at.
CREATE OR REPLACE FUNCTION mad.set_alias(model text, alias text, version int, reason text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := set_alias.model;
  alias_name text := set_alias.alias;
  target int := set_alias.version;
  target_status text;
  target_reason text;
  previous int;
BEGIN
  PERFORM mad.require_role('mad_admin', 'move aliases');
  PERFORM mad.check_name(model_name, 'model');
  PERFORM mad.check_name(alias_name, 'alias');
  PERFORM mad.require_model(model_name);
  -- Serialise moves of one model's aliases, so "from" in the history is always the true previous target.
  PERFORM FROM mad.models m WHERE m.name = model_name FOR NO KEY UPDATE;

  SELECT v.status, v.reason INTO target_status, target_reason
  FROM mad.model_versions v WHERE v.model = model_name AND v.version = target;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Model % has no version %; %.', quote_literal(model_name), coalesce(target::text, 'NULL'), mad.describe_versions(model_name)
      USING ERRCODE = 'no_data_found';
  ELSIF target_status = 'pending' THEN
    RAISE EXCEPTION 'Cannot point %@% at version %: it is pending, and an alias can only point at a ready version.', model_name, alias_name, target
      USING ERRCODE = '55M01', HINT = 'A running sidecar (`mad serve`) validates pending versions; try again once it is ready.';
  ELSIF target_status = 'rejected' THEN
    RAISE EXCEPTION 'Cannot point %@% at version %: it was rejected (%), and an alias can only point at a ready version.', model_name, alias_name, target, target_reason
      USING ERRCODE = '55M01', HINT = 'Push a model ONNX Runtime can load, then point the alias at its version.';
  END IF;

  SELECT a.version INTO previous FROM mad.aliases a WHERE a.model = model_name AND a.alias = alias_name;
  IF previous = target THEN
    RETURN target; -- already there: not a move
  END IF;

  INSERT INTO mad.aliases AS a (model, alias, version) VALUES (model_name, alias_name, target)
  ON CONFLICT (model, alias) DO UPDATE SET version = EXCLUDED.version, updated_by = mad.caller_role(), updated_at = now();
  INSERT INTO mad.alias_history (model, alias, from_version, to_version, kind, reason)
  VALUES (model_name, alias_name, previous, target, 'set', set_alias.reason);

  PERFORM pg_notify('mad_models', json_build_object('event', 'alias', 'model', model_name, 'alias', alias_name, 'version', target)::text);
  RETURN target;
END
$$;

-- Points an alias back at the version it pointed at before its last move (a rollback of a rollback undoes it).
-- Recorded as a move of kind 'rollback'. Returns the version it now points at.
CREATE OR REPLACE FUNCTION mad.rollback_alias(model text, alias text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := rollback_alias.model;
  alias_name text := rollback_alias.alias;
  current_version int;
  previous int;
BEGIN
  PERFORM mad.require_role('mad_admin', 'move aliases');
  PERFORM mad.check_name(model_name, 'model');
  PERFORM mad.check_name(alias_name, 'alias');
  PERFORM mad.require_model(model_name);
  PERFORM FROM mad.models m WHERE m.name = model_name FOR NO KEY UPDATE;

  SELECT a.version INTO current_version FROM mad.aliases a WHERE a.model = model_name AND a.alias = alias_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Model % has no alias %; %.', quote_literal(model_name), quote_literal(alias_name), mad.describe_aliases(model_name)
      USING ERRCODE = 'no_data_found';
  END IF;

  SELECT h.from_version INTO previous FROM mad.alias_history h
  WHERE h.model = model_name AND h.alias = alias_name ORDER BY h.id DESC LIMIT 1;
  IF previous IS NULL THEN
    RAISE EXCEPTION 'Cannot roll back %@%: it has pointed at version % since it was created, so there is no previous version.', model_name, alias_name, current_version
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Point it at another version with mad.set_alias.';
  END IF;

  UPDATE mad.aliases a SET version = previous, updated_by = mad.caller_role(), updated_at = now()
  WHERE a.model = model_name AND a.alias = alias_name;
  INSERT INTO mad.alias_history (model, alias, from_version, to_version, kind, reason)
  VALUES (model_name, alias_name, current_version, previous, 'rollback', format('rollback of the move to version %s', current_version));

  PERFORM pg_notify('mad_models', json_build_object('event', 'alias', 'model', model_name, 'alias', alias_name, 'version', previous)::text);
  RETURN previous;
END
$$;

-- Records a sidecar's verdict on a pending version: 'ready' with its signature, or 'rejected' with ONNX Runtime's reason.
CREATE OR REPLACE FUNCTION mad.mark_version(model text, version int, status text, reason text, signature jsonb, sidecar text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := mark_version.model;
  current_status text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'validate model versions');
  IF mark_version.status = 'ready' AND mark_version.signature IS NULL THEN
    RAISE EXCEPTION 'A ready version needs its signature.' USING ERRCODE = 'invalid_parameter_value';
  ELSIF mark_version.status = 'rejected' AND mark_version.reason IS NULL THEN
    RAISE EXCEPTION 'A rejected version needs the reason.' USING ERRCODE = 'invalid_parameter_value';
  ELSIF mark_version.status IS NULL OR mark_version.status NOT IN ('ready', 'rejected') THEN
    RAISE EXCEPTION 'A version can be marked ready or rejected, not %.', coalesce(quote_literal(mark_version.status), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  SELECT v.status INTO current_status FROM mad.model_versions v
  WHERE v.model = model_name AND v.version = mark_version.version FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM mad.require_model(model_name);
    RAISE EXCEPTION 'Model % has no version %; %.', quote_literal(model_name), mark_version.version, mad.describe_versions(model_name)
      USING ERRCODE = 'no_data_found';
  ELSIF current_status <> 'pending' THEN
    RAISE EXCEPTION 'Version %@% is already %; versions are validated once.', model_name, mark_version.version, current_status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;

  UPDATE mad.model_versions v
  SET status = mark_version.status,
      reason = CASE WHEN mark_version.status = 'rejected' THEN mark_version.reason END,
      signature = CASE WHEN mark_version.status = 'ready' THEN mark_version.signature END,
      validated_by = coalesce(mark_version.sidecar, mad.caller_role()),
      validated_at = now()
  WHERE v.model = model_name AND v.version = mark_version.version;

  PERFORM pg_notify('mad_models', json_build_object('event', mark_version.status, 'model', model_name, 'version', mark_version.version)::text);
END
$$;

-- Records a request: checks the caller, the reference (it must resolve to a ready version) and the features'
-- shape, assigns it to a live sidecar, and wakes that sidecar. A 'call' request needs a live sidecar now.
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

-- Starts a full refresh of a prediction table with the version its model reference means now; returns the job id
-- at once. A refresh already running for the table is not started twice: its id is returned. The caller must be
-- allowed to SELECT from the source.
CREATE OR REPLACE FUNCTION mad.refresh(name text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(refresh.name);
  model_name text := split_part(binding.model, '@', 1);
  model_version int;
  signature jsonb;
  running bigint;
  new_job bigint;
  build text;
  total bigint;
  task_count int;
  sample text := '';
  step bigint;
  bound record;
  stale record;
  previous text[];
  ordinal int := 0;
  missing text;
BEGIN
  PERFORM mad.require_binding_owner(binding, 'refresh ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'refresh ' || quote_ident(binding.name));
  -- Serialise refreshes of one table, so "already running" is decided once.
  PERFORM FROM mad.prediction_tables p WHERE p.name = binding.name FOR UPDATE;
  SELECT j.id INTO running FROM mad.jobs j WHERE j.prediction_table = binding.name AND j.state = 'running';
  IF running IS NOT NULL THEN
    RETURN running;
  END IF;
  FOR stale IN SELECT j.build_table FROM mad.jobs j
               WHERE j.prediction_table = binding.name AND j.state = 'failed' AND to_regclass(j.build_table) IS NOT NULL LOOP
    EXECUTE format('DROP TABLE %s', stale.build_table);
  END LOOP;

  model_version := mad.resolve_reference(binding.model);
  signature := mad.ready_signature(model_name, model_version);
  IF (SELECT jsonb_agg(jsonb_build_array(c.value -> 'type', c.value -> 'output', c.value -> 'offset')) FROM jsonb_array_elements(signature -> 'columns') c)
     IS DISTINCT FROM (SELECT jsonb_agg(jsonb_build_array(c.value -> 'type', c.value -> 'output', c.value -> 'offset')) FROM jsonb_array_elements(binding.columns) c) THEN
    RAISE EXCEPTION 'Model %@% decodes into columns (%) that differ from mad_out.%''s (%): create a new prediction table for it.',
      model_name, model_version, (SELECT string_agg(c.value ->> 'name', ', ') FROM jsonb_array_elements(signature -> 'columns') c),
      binding.name, (SELECT string_agg(c.value ->> 'name', ', ') FROM jsonb_array_elements(binding.columns) c)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT string_agg(quote_ident(c), ', ') INTO missing FROM unnest(binding.key_columns || binding.feature_columns) c
  WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = binding.source AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION '% no longer has column(s) %, which prediction table % reads; its columns: %.', binding.source, missing,
      quote_literal(binding.name), mad.describe_columns(binding.source) USING ERRCODE = 'undefined_column';
  END IF;

  EXECUTE format('SELECT count(*) FROM %s', mad.qualified_name(binding.source)) INTO total;
  task_count := greatest(1, least(mad.setting_int('refresh_max_tasks', 64),
                                  ceil(total::numeric / greatest(1, mad.setting_int('refresh_task_rows', 50000)))::int));

  INSERT INTO mad.jobs (prediction_table, model, version, build_table, tasks_total, rows_total)
  VALUES (binding.name, model_name, model_version, '', 0, total) RETURNING id INTO new_job;
  build := format('mad_build.%I', 'job_' || new_job);
  -- With the primary key from the start: tasks maintain it as they write, overlapped with scoring, instead of one
  -- index build after the last task; it also refuses a key written twice at once.
  EXECUTE format('CREATE TABLE %s (LIKE mad_out.%I INCLUDING INDEXES)', build, binding.name);
  EXECUTE format('GRANT SELECT, INSERT ON %s TO mad_sidecar', build);

  -- Key ranges from a sample of the key in key order: each task covers [previous bound, next bound).
  IF task_count > 1 THEN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) IN ('r', 'm') THEN
      sample := format(' TABLESAMPLE SYSTEM (%s)', least(100, round(100.0 * task_count * 1000 / total, 4)));
    END IF;
    step := NULL;
    FOR bound IN EXECUTE format(
      'SELECT b FROM (SELECT ARRAY[%s] AS b, row_number() OVER (ORDER BY %s) AS rn, count(*) OVER () AS c FROM %s%s WHERE %s) s ' ||
      'WHERE rn %% greatest(1, c / %s) = 0 AND rn < c ORDER BY rn',
      mad.key_list(binding, '%I::text'), mad.key_list(binding, '%I'), mad.qualified_name(binding.source), sample,
      mad.key_list(binding, '%I IS NOT NULL', ' AND '), task_count)
    LOOP
      CONTINUE WHEN bound.b = previous;
      INSERT INTO mad.tasks (job_id, ordinal, lo, hi) VALUES (new_job, ordinal, previous, bound.b);
      previous := bound.b;
      ordinal := ordinal + 1;
    END LOOP;
  END IF;
  INSERT INTO mad.tasks (job_id, ordinal, lo, hi) VALUES (new_job, ordinal, previous, NULL);

  UPDATE mad.jobs j SET build_table = build, tasks_total = ordinal + 1 WHERE j.id = new_job;
  PERFORM pg_notify('mad_jobs', json_build_object('event', 'created', 'job', new_job, 'table', binding.name)::text);
  RETURN new_job;
END
$$;

-- Starts streaming a prediction table: the caller must be allowed to read its source, as to create it.
CREATE OR REPLACE FUNCTION mad.watch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  operation text;
BEGIN
  binding := mad.require_prediction_table(watch.name);
  PERFORM mad.require_binding_owner(binding, 'watch ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'watch ' || quote_ident(binding.name));
  PERFORM mad.require_trigger_privilege(binding.source, 'watch ' || quote_ident(binding.name));
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'Only a table can be watched; % is not one.', binding.source USING ERRCODE = 'wrong_object_type';
  END IF;
  IF binding.watched THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(mad.lock_key('stream_notify'), 0);
  PERFORM mad.create_capture(binding, (SELECT w.notify FROM mad.stream_wake w WHERE w.id = 1));
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                   'mad_watch_' || binding.name || '_' || operation,
                   CASE operation WHEN 'i' THEN 'INSERT' WHEN 'u' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'TRUNCATE' END,
                   mad.qualified_name(binding.source),
                   CASE operation WHEN 'i' THEN 'REFERENCING NEW TABLE AS new_rows' WHEN 'u' THEN 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                  WHEN 'd' THEN 'REFERENCING OLD TABLE AS old_rows' ELSE '' END,
                   mad.capture_function(binding.name, operation));
  END LOOP;
  PERFORM mad.grant_stream_writes(binding.name);
  -- Keys left by an unwatch that skipped a batch in flight: a refresh, not the stream, brings such rows up to date.
  PERFORM mad.clear_outbox(binding.name);
  UPDATE mad.prediction_tables p SET watched = true, stream_error = NULL, stream_error_at = NULL WHERE p.name = binding.name;
  PERFORM pg_notify('mad_rows', 'plan:' || binding.name); -- 'plan:': sidecars read their plans again
END
$$;

-- Stops streaming: removes the triggers, their functions and the keys still waiting (the outbox table stays, empty).
CREATE OR REPLACE FUNCTION mad.unwatch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  operation text;
BEGIN
  binding := mad.require_prediction_table(unwatch.name);
  PERFORM mad.require_binding_owner(binding, 'unwatch ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'unwatch ' || quote_ident(binding.name));
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'mad_watch_' || binding.name || '_' || operation, mad.qualified_name(binding.source));
    EXECUTE format('DROP FUNCTION IF EXISTS %s()', mad.capture_function(binding.name, operation));
  END LOOP;
  EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON mad_out.%I FROM mad_sidecar', binding.name);
  UPDATE mad.prediction_tables p SET watched = false, stream_error = NULL, stream_error_at = NULL WHERE p.name = binding.name;
  -- Keys a sidecar's batch holds are skipped, not waited for: that batch waits for the source this holds (a deadlock).
  PERFORM mad.clear_outbox(binding.name);
  DELETE FROM mad.stream_stats s WHERE s.prediction_table = binding.name;
  PERFORM pg_notify('mad_rows', 'plan:' || binding.name);
END
$$;


-- Caller-facing functions that run helpers: as definers, so the helpers need no grant (they read only mad tables,
-- never a user's relation).
ALTER FUNCTION mad.resolve(text, text) SECURITY DEFINER;
ALTER FUNCTION mad.alias_at(text, text, timestamptz) SECURITY DEFINER;
ALTER FUNCTION mad.require_model(text) SECURITY DEFINER;
ALTER FUNCTION mad.stream_lag(text) SECURITY DEFINER;

-- The grants: first nobody may call anything, then each role what it is for.
DO $$
DECLARE
  routine regprocedure;
BEGIN
  FOR routine IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'mad'::regnamespace LOOP
    EXECUTE format('REVOKE ALL ON %s %s FROM PUBLIC, mad_admin, mad_user, mad_sidecar',
                   CASE (SELECT p.prokind FROM pg_catalog.pg_proc p WHERE p.oid = routine) WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, routine);
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION mad.push_model(text, bytea, jsonb), mad.set_alias(text, text, int, text), mad.rollback_alias(text, text),
  mad.create_prediction_table(text, regclass, text[], text, jsonb), mad.inputs_hash(jsonb)
  TO mad_admin;

GRANT EXECUTE ON FUNCTION mad.resolve(text, text), mad.alias_at(text, text, timestamptz), mad.require_model(text),
  mad.refresh(text), mad.watch(text), mad.unwatch(text), mad.stream_lag(text),
  mad.predict_async(text, jsonb), mad.submit_request(text, jsonb, text), mad.await_request(bigint)
  TO mad_admin, mad_user;
GRANT EXECUTE ON PROCEDURE mad.predict(text, jsonb, jsonb) TO mad_admin, mad_user;

GRANT EXECUTE ON FUNCTION mad.register_sidecar(text, text, int, jsonb), mad.sidecar_heartbeat(text), mad.sidecar_stopped(text),
  mad.claim_pending_version(), mad.mark_version(text, int, text, text, jsonb, text),
  mad.claim_task(text, interval), mad.renew_task(bigint, uuid, interval), mad.task_plan(bigint),
  mad.complete_task(bigint, uuid, bigint, bigint), mad.fail_task(bigint, uuid, text, boolean),
  mad.arm_request_worker(text), mad.release_ticket(bigint), mad.claim_requests(text, int, boolean),
  mad.answer_requests(text, jsonb), mad.purge_requests(int),
  mad.stream_set_notify(boolean), mad.stream_claim(text, jsonb), mad.stream_claim_statement(text), mad.stream_plan(text),
  mad.stream_report(text, text, bigint, double precision, text),
  mad.resolve(text, text), mad.setting_int(text, bigint)
  TO mad_sidecar;

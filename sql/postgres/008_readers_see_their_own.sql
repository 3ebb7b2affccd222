-- Readers see their own (issue 12, items 4 and 8): what each role may read in the mad.* tables, and validation that
-- gives up on a version that fails (or crashes its sidecar) twice.
--
-- Until now every table of schema mad was granted whole to mad_admin, mad_user and mad_sidecar, so any mad_user
-- could read every model blob, the key bounds a refresh sampled from sources it may not read, the keys waiting in
-- every outbox, and error texts that quote source values. Per table (docs/SECURITY.md, "What each role reads"):
--   model_versions.onnx          mad_admin and mad_sidecar only (mad_user reads every other column)
--   tasks.lo, hi                 mad_sidecar only (keys of the source); tasks.error also not to mad_user
--   jobs                         row security: a mad_user sees the jobs of the tables it owns (their errors may quote
--                                its source's values); mad_admin and mad_sidecar see all
--   prediction_tables            stream_error(_at) not to mad_user (the owner reads it through mad.stream_lag)
--   stream_during_refresh        mad_sidecar only (keys)
--   request_workers              not to mad_user (the tickets CALL mad.predict waits on)
--   sidecars                     mad_user reads id, started_at, heartbeat_at, stopped_at (whether one runs), not the
--                                host, pid, login or info of the engine
--   outbox (view)                each table's keys only to a role that may read the source's key columns without row
--                                security hiding rows from it (rebuild_outbox_view)
--   requests                     unchanged: its policy (005) already shows a role only its own requests
-- Column grants are computed from the catalog ("every column but …"), so columns a later migration adds to these
-- tables are decided there, not silently granted here.
--
-- Validation attempts: a version whose load crashes the sidecar (a model that allocates a huge tensor at load gets the
-- process killed) used to stay pending, and every sidecar took it in turn and crashed. The claim still holds the
-- version's row lock for the whole validation (now FOR NO KEY UPDATE SKIP LOCKED, released when the sidecar dies),
-- and the sidecar counts the attempt with mad.count_validation_attempt on a second session before it loads the model,
-- so the count is committed whatever happens next. The attempts live in mad.version_validations, apart from the locked
-- row; its foreign key (which goes with the version) takes a KEY SHARE lock on that row, which NO KEY UPDATE lets
-- through where FOR UPDATE would make the count wait for the claim. A claim that finds a pending version
-- already attempted max_validation_attempts times (each attempt ended without a verdict) rejects it with the reason.
-- A sidecar whose load fails without a verdict on the model (out of memory) marks the attempt 'failed'; the last one
-- allowed rejects the version at once.

-- Grants role SELECT on every column of a table but the hidden ones (after revoking its table-wide SELECT).
CREATE FUNCTION pg_temp.grant_select_except(target regclass, hidden text[], grantee text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('REVOKE SELECT ON %s FROM %I', target, grantee);
  EXECUTE format('GRANT SELECT (%s) ON %s TO %I',
    (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> ALL (hidden)),
    target, grantee);
END
$$;

SELECT pg_temp.grant_select_except('mad.model_versions', ARRAY['onnx'], 'mad_user');
SELECT pg_temp.grant_select_except('mad.tasks', ARRAY['lo', 'hi', 'error'], 'mad_user');
SELECT pg_temp.grant_select_except('mad.tasks', ARRAY['lo', 'hi'], 'mad_admin');
SELECT pg_temp.grant_select_except('mad.prediction_tables', ARRAY['stream_error', 'stream_error_at'], 'mad_user');
SELECT pg_temp.grant_select_except('mad.sidecars', ARRAY['host', 'pid', 'login', 'info'], 'mad_user');
REVOKE SELECT ON mad.stream_during_refresh FROM mad_admin, mad_user;
REVOKE SELECT ON mad.request_workers FROM mad_user;

-- A policy runs as the reader: current_user is the effective role. The owner is matched through pg_roles because
-- pg_has_role(name) raises for a role that no longer exists. Definer functions (the table's owner) bypass it.
ALTER TABLE mad.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_read ON mad.jobs FOR SELECT USING (
  pg_catalog.pg_has_role('mad_admin', 'MEMBER')
  OR pg_catalog.pg_has_role('mad_sidecar', 'MEMBER')
  OR EXISTS (SELECT FROM mad.prediction_tables p JOIN pg_catalog.pg_roles r ON r.rolname = p.owner
             WHERE p.name = jobs.prediction_table AND pg_catalog.pg_has_role(r.oid, 'MEMBER')));

-- mad.outbox: each branch is gated on the reader's own rights to the source, as a constant condition the planner
-- evaluates once per query: SELECT on every key column (by number, so a renamed column keeps its gate and a dropped
-- table gives NULL, not an error) and no row security active for the reader (it would hide rows whose keys the
-- outbox still holds). A view runs its functions as the reader, so these ask about the reader, not the view's owner.
CREATE OR REPLACE FUNCTION mad.rebuild_outbox_view() RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  EXECUTE 'CREATE OR REPLACE VIEW mad.outbox (prediction_table, id, key, enqueued_at) AS ' || coalesce(
    (SELECT string_agg(format('SELECT %L::text, o.mad_id, ARRAY[%s]::text[], o.mad_enqueued_at FROM mad_outbox.%I o WHERE %s',
                              p.name, mad.key_list(p, 'o.%I::text'), p.name,
                              -- A source that is gone (or lost a key column) shows its keys to no one.
                              coalesce((SELECT string_agg(format('pg_catalog.has_column_privilege(%s::oid, %s::smallint, %L)',
                                                                 p.source::oid, a.attnum, 'SELECT'), ' AND ')
                                        FROM pg_catalog.pg_attribute a
                                        WHERE a.attrelid = p.source AND a.attname = ANY (p.key_columns) AND NOT a.attisdropped
                                        HAVING count(*) = cardinality(p.key_columns)), 'false')
                              || format(' AND NOT pg_catalog.row_security_active(%s::oid)', p.source::oid)),
                       ' UNION ALL ' ORDER BY p.name)
     FROM mad.prediction_tables p WHERE pg_catalog.to_regclass(format('mad_outbox.%I', p.name)) IS NOT NULL),
    'SELECT NULL::text, NULL::bigint, NULL::text[], NULL::timestamptz WHERE false');
END
$$;

SELECT mad.rebuild_outbox_view();

-- Validation attempts.

INSERT INTO mad.settings (name, value, description) VALUES
  ('max_validation_attempts', '2',
   'A pending version whose validation was attempted this many times without a verdict (the sidecar died loading it, or the load failed) is rejected.');

CREATE TABLE mad.version_validations (
  model text NOT NULL,
  version int NOT NULL,
  attempts int NOT NULL DEFAULT 0,
  last_sidecar text,
  last_attempt_at timestamptz,
  -- Why the last attempt that ended without a verdict failed (NULL when it died without saying).
  last_error text,
  PRIMARY KEY (model, version),
  FOREIGN KEY (model, version) REFERENCES mad.model_versions (model, version) ON DELETE CASCADE
);
GRANT SELECT ON mad.version_validations TO mad_admin, mad_sidecar;

-- Claims the oldest pending version no other sidecar holds; the row lock lasts until the caller's transaction ends,
-- which is where it must call mad.mark_version. Before it loads the model, the caller counts the attempt on another
-- session (mad.count_validation_attempt). Pending versions already attempted max_validation_attempts times are
-- rejected here, in the caller's transaction, and the next one is claimed.
CREATE OR REPLACE FUNCTION mad.claim_pending_version() RETURNS TABLE (model text, version int, onnx bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  candidate record;
  tried mad.version_validations;
  allowed int := mad.setting_int('max_validation_attempts', 2);
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'validate model versions');
  LOOP
    SELECT v.model, v.version INTO candidate FROM mad.model_versions v
    WHERE v.status = 'pending'
    ORDER BY v.created_at, v.model, v.version
    LIMIT 1
    FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      RETURN;
    END IF;

    SELECT a.* INTO tried FROM mad.version_validations a WHERE a.model = candidate.model AND a.version = candidate.version;
    IF coalesce(tried.attempts, 0) < allowed THEN
      RETURN QUERY SELECT v.model, v.version, v.onnx FROM mad.model_versions v
        WHERE v.model = candidate.model AND v.version = candidate.version;
      RETURN;
    END IF;

    UPDATE mad.model_versions v
    SET status = 'rejected',
        reason = format('Validation failed %s times: the sidecar validating it stopped while loading it (the last attempt by %s at %s)%s. '
                        'A model that allocates a huge tensor at load gets the process killed; check its tensors'' sizes and push a fixed version.',
                        tried.attempts, coalesce(tried.last_sidecar, '(unknown)'), tried.last_attempt_at,
                        CASE WHEN tried.last_error IS NOT NULL THEN format('; an earlier attempt failed with: %s', tried.last_error) ELSE '' END),
        validated_by = mad.caller_role(),
        validated_at = now()
    WHERE v.model = candidate.model AND v.version = candidate.version;
    PERFORM pg_notify('mad_models', json_build_object('event', 'rejected', 'model', candidate.model, 'version', candidate.version)::text);
  END LOOP;
END
$$;

-- Counts an attempt to validate a version, committed on its own (the caller's second session, outside the claim's
-- transaction), before the sidecar loads the model: a sidecar that dies loading it has still counted. Returns the
-- attempts so far, this one included.
CREATE FUNCTION mad.count_validation_attempt(model text, version int, sidecar text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  counted int;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'validate model versions');
  INSERT INTO mad.version_validations AS a (model, version, attempts, last_sidecar, last_attempt_at)
  VALUES (count_validation_attempt.model, count_validation_attempt.version, 1, count_validation_attempt.sidecar, now())
  ON CONFLICT (model, version) DO UPDATE
    SET attempts = a.attempts + 1, last_sidecar = EXCLUDED.last_sidecar, last_attempt_at = EXCLUDED.last_attempt_at
  RETURNING a.attempts INTO counted;
  RETURN counted;
END
$$;

-- Records a sidecar's verdict on a pending version: 'ready' with its signature, or 'rejected' with ONNX Runtime's
-- reason. 'failed' (with the reason) says the attempt ended without a verdict on the model (the load ran out of
-- memory): the version stays pending for another attempt, or is rejected when this was the last one allowed.
CREATE OR REPLACE FUNCTION mad.mark_version(model text, version int, status text, reason text, signature jsonb, sidecar text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := mark_version.model;
  current_status text;
  verdict text := mark_version.status;
  verdict_reason text := mark_version.reason;
  attempted int;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'validate model versions');
  IF mark_version.status = 'ready' AND mark_version.signature IS NULL THEN
    RAISE EXCEPTION 'A ready version needs its signature.' USING ERRCODE = 'invalid_parameter_value';
  ELSIF mark_version.status IN ('rejected', 'failed') AND mark_version.reason IS NULL THEN
    RAISE EXCEPTION 'A % version needs the reason.', mark_version.status USING ERRCODE = 'invalid_parameter_value';
  ELSIF mark_version.status IS NULL OR mark_version.status NOT IN ('ready', 'rejected', 'failed') THEN
    RAISE EXCEPTION 'A version can be marked ready, rejected or failed (an attempt without a verdict), not %.',
      coalesce(quote_literal(mark_version.status), 'NULL')
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

  IF verdict = 'failed' THEN
    UPDATE mad.version_validations a SET last_error = mark_version.reason
    WHERE a.model = model_name AND a.version = mark_version.version
    RETURNING a.attempts INTO attempted;
    IF coalesce(attempted, 0) < mad.setting_int('max_validation_attempts', 2) THEN
      RETURN; -- stays pending: the next claim tries again
    END IF;
    verdict := 'rejected';
    verdict_reason := format('Validation failed %s times; the last attempt (%s) failed with: %s',
                             attempted, coalesce(mark_version.sidecar, mad.caller_role()), mark_version.reason);
  END IF;

  UPDATE mad.model_versions v
  SET status = verdict,
      reason = CASE WHEN verdict = 'rejected' THEN verdict_reason END,
      signature = CASE WHEN verdict = 'ready' THEN mark_version.signature END,
      validated_by = coalesce(mark_version.sidecar, mad.caller_role()),
      validated_at = now()
  WHERE v.model = model_name AND v.version = mark_version.version;

  PERFORM pg_notify('mad_models', json_build_object('event', verdict, 'model', model_name, 'version', mark_version.version)::text);
END
$$;

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.count_validation_attempt(text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.count_validation_attempt(text, integer, text) TO mad_sidecar;

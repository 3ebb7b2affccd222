-- What the sidecars (`mad serve`) need: their own registration with a heartbeat, and the claim / mark protocol
-- for validating pending versions. Several sidecars may run: a version is claimed with FOR UPDATE SKIP LOCKED in the
-- sidecar's transaction, so each is validated once, and a sidecar that dies mid-validation releases it.

CREATE TABLE mad.sidecars (
  id text PRIMARY KEY,
  host text NOT NULL,
  pid int NOT NULL,
  login text NOT NULL DEFAULT session_user,
  info jsonb NOT NULL DEFAULT '{}',
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  stopped_at timestamptz
);

GRANT SELECT ON mad.sidecars TO mad_admin, mad_user, mad_sidecar;

CREATE FUNCTION mad.register_sidecar(id text, host text, pid int, info jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run a sidecar');
  INSERT INTO mad.sidecars AS s (id, host, pid, info)
  VALUES (register_sidecar.id, register_sidecar.host, register_sidecar.pid, coalesce(register_sidecar.info, '{}'))
  ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, info = EXCLUDED.info, login = session_user,
    started_at = now(), heartbeat_at = now(), stopped_at = NULL;
END
$$;

CREATE FUNCTION mad.sidecar_heartbeat(id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run a sidecar');
  UPDATE mad.sidecars s SET heartbeat_at = now(), stopped_at = NULL WHERE s.id = sidecar_heartbeat.id;
END
$$;

CREATE FUNCTION mad.sidecar_stopped(id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run a sidecar');
  UPDATE mad.sidecars s SET stopped_at = now() WHERE s.id = sidecar_stopped.id;
END
$$;

-- Claims the oldest pending version no other sidecar holds; the row lock lasts until the caller's transaction ends,
-- which is where it must call mad.mark_version.
CREATE FUNCTION mad.claim_pending_version() RETURNS TABLE (model text, version int, onnx bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'validate model versions');
  RETURN QUERY
    SELECT v.model, v.version, v.onnx FROM mad.model_versions v
    WHERE v.status = 'pending'
    ORDER BY v.created_at, v.model, v.version
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
END
$$;

-- Records a sidecar's verdict on a pending version: 'ready' with its signature, or 'rejected' with ONNX Runtime's reason.
CREATE FUNCTION mad.mark_version(model text, version int, status text, reason text, signature jsonb, sidecar text DEFAULT NULL)
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

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.claim_pending_version(), mad.mark_version(text, integer, text, text, jsonb, text),
  mad.register_sidecar(text, text, integer, jsonb), mad.sidecar_heartbeat(text), mad.sidecar_stopped(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.claim_pending_version(), mad.mark_version(text, integer, text, text, jsonb, text),
  mad.register_sidecar(text, text, integer, jsonb), mad.sidecar_heartbeat(text), mad.sidecar_stopped(text) TO mad_sidecar;

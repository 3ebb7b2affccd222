-- The model registry: models, immutable versions (the ONNX bytes as a bytea), aliases and their history, the
-- settings every capability reads, and the helpers the mad functions share (name validation, the caller's role
-- check, the lists of what exists that error messages name).
--
-- Writes go only through the SECURITY DEFINER functions at the end of this file, which have a fixed search_path and
-- check the caller's role; the roles get SELECT. An alias move is an ordinary row change, so it commits or rolls
-- back with the caller's transaction. NOTIFY mad_models payloads are JSON: {"event": ..., "model": ..., "version": ...}.

CREATE TABLE mad.settings (
  name text PRIMARY KEY,
  value text NOT NULL,
  description text NOT NULL
);

INSERT INTO mad.settings (name, value, description) VALUES
  ('max_model_bytes', '268435456', 'The largest ONNX blob mad.push_model accepts, in bytes (256 MiB).');

CREATE TABLE mad.models (
  name text PRIMARY KEY,
  last_version int NOT NULL DEFAULT 0,
  created_by text NOT NULL DEFAULT mad.caller_role(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT models_name_valid CHECK (name ~ '^[a-z_][a-z0-9_]*$' AND length(name) <= 63)
);

CREATE TABLE mad.model_versions (
  model text NOT NULL REFERENCES mad.models (name),
  version int NOT NULL CHECK (version > 0),
  onnx bytea NOT NULL,
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size_bytes bigint NOT NULL CHECK (size_bytes > 0),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'rejected')),
  reason text,
  signature jsonb,
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_by text NOT NULL DEFAULT mad.caller_role(),
  created_at timestamptz NOT NULL DEFAULT now(),
  validated_by text,
  validated_at timestamptz,
  PRIMARY KEY (model, version),
  CONSTRAINT model_versions_ready_has_signature CHECK (status <> 'ready' OR signature IS NOT NULL),
  CONSTRAINT model_versions_rejected_has_reason CHECK (status <> 'rejected' OR reason IS NOT NULL)
);

-- ONNX weights hardly compress: store the blob out of line without trying.
ALTER TABLE mad.model_versions ALTER COLUMN onnx SET STORAGE EXTERNAL;

-- Sidecars scan for pending versions on start and after every reconnect.
CREATE INDEX model_versions_pending ON mad.model_versions (created_at) WHERE status = 'pending';

CREATE TABLE mad.aliases (
  model text NOT NULL REFERENCES mad.models (name),
  alias text NOT NULL CHECK (alias ~ '^[a-z_][a-z0-9_]*$' AND length(alias) <= 63),
  version int NOT NULL,
  updated_by text NOT NULL DEFAULT mad.caller_role(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (model, alias),
  FOREIGN KEY (model, version) REFERENCES mad.model_versions (model, version)
);

CREATE TABLE mad.alias_history (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  model text NOT NULL,
  alias text NOT NULL,
  from_version int,
  to_version int NOT NULL,
  kind text NOT NULL CHECK (kind IN ('set', 'rollback')),
  moved_by text NOT NULL DEFAULT mad.caller_role(),
  -- clock_timestamp, not now(): two moves in one transaction keep their order in time.
  moved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  reason text,
  FOREIGN KEY (model, to_version) REFERENCES mad.model_versions (model, version)
);

CREATE INDEX alias_history_lookup ON mad.alias_history (model, alias, moved_at DESC, id DESC);

GRANT SELECT ON mad.settings, mad.models, mad.model_versions, mad.aliases, mad.alias_history
  TO mad_admin, mad_user, mad_sidecar;

-- Helpers

-- A lower-case identifier of at most 63 characters; anything else is refused before it reaches any statement.
CREATE FUNCTION mad.check_name(value text, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF value IS NULL OR value !~ '^[a-z_][a-z0-9_]*$' OR length(value) > 63 THEN
    RAISE EXCEPTION 'Invalid % name %: use lower-case letters, digits and ''_'', starting with a letter or ''_'', at most 63 characters.',
      what, coalesce(quote_literal(value), 'NULL')
      USING ERRCODE = 'invalid_name';
  END IF;
  RETURN value;
END
$$;

-- SECURITY DEFINER functions run as their owner: the caller is the effective role, mad.caller_role(). EXECUTE grants are
-- the gate; this check stays as a second one, with a message that names the role to grant.
CREATE FUNCTION mad.require_role(needed text, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT pg_catalog.pg_has_role(mad.caller_role(), needed, 'MEMBER') THEN
    RAISE EXCEPTION 'permission denied to %: role % needs role %', action, quote_ident(mad.caller_role()), needed
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('An administrator can run: GRANT %I TO %I;', needed, mad.caller_role());
  END IF;
END
$$;

-- A numeric setting of mad.settings, or the fallback when it is not set.
CREATE FUNCTION mad.setting_int(setting text, fallback bigint) RETURNS bigint
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce((SELECT s.value::bigint FROM mad.settings s WHERE s.name = setting), fallback);
$$;

CREATE FUNCTION mad.max_model_bytes() RETURNS bigint
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT mad.setting_int('max_model_bytes', 268435456);
$$;

CREATE FUNCTION mad.describe_models() RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce('the models are ' || string_agg(quote_literal(m.name), ', ' ORDER BY m.name),
                  'there are no models yet: push one with mad.push_model or `mad models push`')
  FROM mad.models m;
$$;

CREATE FUNCTION mad.describe_versions(model_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce('its versions are ' || string_agg(format('%s (%s)', v.version, v.status), ', ' ORDER BY v.version),
                  'it has no versions')
  FROM mad.model_versions v WHERE v.model = model_name;
$$;

CREATE FUNCTION mad.describe_aliases(model_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce('its aliases are ' || string_agg(format('%s -> %s', a.alias, a.version), ', ' ORDER BY a.alias),
                  'it has no aliases')
  FROM mad.aliases a WHERE a.model = model_name;
$$;

-- Raises "not found" naming the models that exist, unless the model exists.
CREATE FUNCTION mad.require_model(model_name text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM mad.models m WHERE m.name = model_name) THEN
    RAISE EXCEPTION 'Model % does not exist; %.', quote_literal(model_name), mad.describe_models()
      USING ERRCODE = 'no_data_found';
  END IF;
END
$$;

-- The registry's write and lookup functions.

CREATE FUNCTION mad.push_model(name text, onnx bytea, metadata jsonb DEFAULT '{}') RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := push_model.name;
  size bigint := length(push_model.onnx);
  limit_bytes bigint := mad.max_model_bytes();
  new_version int;
BEGIN
  PERFORM mad.require_role('mad_admin', 'push models');
  PERFORM mad.check_name(model_name, 'model');
  IF push_model.onnx IS NULL OR size = 0 THEN
    RAISE EXCEPTION 'The model % is empty (0 bytes): push the bytes of an .onnx file.', quote_literal(model_name)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF size > limit_bytes THEN
    RAISE EXCEPTION 'The model % is % bytes; the limit is % bytes.', quote_literal(model_name), size, limit_bytes
      USING ERRCODE = 'program_limit_exceeded',
            HINT = 'Raise it with: UPDATE mad.settings SET value = ''<bytes>'' WHERE name = ''max_model_bytes'';';
  END IF;
  IF push_model.metadata IS NOT NULL AND jsonb_typeof(push_model.metadata) <> 'object' THEN
    RAISE EXCEPTION 'The metadata of model % must be a JSON object, not %.', quote_literal(model_name), jsonb_typeof(push_model.metadata)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- The model row is the version counter; its row lock serialises concurrent pushes of one model.
  INSERT INTO mad.models AS m (name, last_version) VALUES (model_name, 1)
  ON CONFLICT (name) DO UPDATE SET last_version = m.last_version + 1, updated_at = now()
  RETURNING m.last_version INTO new_version;

  INSERT INTO mad.model_versions (model, version, onnx, sha256, size_bytes, metadata)
  VALUES (model_name, new_version, push_model.onnx, encode(sha256(push_model.onnx), 'hex'), size,
          coalesce(push_model.metadata, '{}'));

  PERFORM pg_notify('mad_models', json_build_object('event', 'pushed', 'model', model_name, 'version', new_version)::text);
  RETURN new_version;
END
$$;

-- The version a reference means: target NULL is the 'production' alias when it exists, else the newest ready
-- version; digits are a version number; anything else is an alias.
CREATE FUNCTION mad.resolve(model text, target text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := resolve.model;
  found_version int;
BEGIN
  PERFORM mad.check_name(model_name, 'model');
  PERFORM mad.require_model(model_name);
  IF resolve.target IS NULL THEN
    SELECT a.version INTO found_version FROM mad.aliases a WHERE a.model = model_name AND a.alias = 'production';
    IF found_version IS NULL THEN
      SELECT max(v.version) INTO found_version FROM mad.model_versions v WHERE v.model = model_name AND v.status = 'ready';
    END IF;
    IF found_version IS NULL THEN
      RAISE EXCEPTION 'Model % has no ready version yet; %.', quote_literal(model_name), mad.describe_versions(model_name)
        USING ERRCODE = '55M01', HINT = 'A running sidecar (`mad serve`) validates pending versions.';
    END IF;
  ELSIF resolve.target ~ '^[0-9]{1,9}$' THEN
    SELECT v.version INTO found_version FROM mad.model_versions v WHERE v.model = model_name AND v.version = resolve.target::int;
    IF found_version IS NULL THEN
      RAISE EXCEPTION 'Model % has no version %; %.', quote_literal(model_name), resolve.target, mad.describe_versions(model_name)
        USING ERRCODE = 'no_data_found';
    END IF;
  ELSE
    PERFORM mad.check_name(resolve.target, 'alias');
    SELECT a.version INTO found_version FROM mad.aliases a WHERE a.model = model_name AND a.alias = resolve.target;
    IF found_version IS NULL THEN
      RAISE EXCEPTION 'Model % has no alias %; %.', quote_literal(model_name), quote_literal(resolve.target), mad.describe_aliases(model_name)
        USING ERRCODE = 'no_data_found';
    END IF;
  END IF;
  RETURN found_version;
END
$$;

-- Moves (or creates) an alias; only a ready version may be served. Returns the version it now points at.
CREATE FUNCTION mad.set_alias(model text, alias text, version int, reason text DEFAULT NULL) RETURNS int
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
CREATE FUNCTION mad.rollback_alias(model text, alias text) RETURNS int
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

-- The version an alias pointed at, at a moment in the past; NULL before it was created. An alias that never
-- existed is "not found", naming the aliases that do.
CREATE FUNCTION mad.alias_at(model text, alias text, at timestamptz) RETURNS int
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := alias_at.model;
  alias_name text := alias_at.alias;
  found_version int;
BEGIN
  PERFORM mad.check_name(model_name, 'model');
  PERFORM mad.check_name(alias_name, 'alias');
  PERFORM mad.require_model(model_name);
  IF NOT EXISTS (SELECT FROM mad.alias_history h WHERE h.model = model_name AND h.alias = alias_name) THEN
    RAISE EXCEPTION 'Model % has no alias %; %.', quote_literal(model_name), quote_literal(alias_name), mad.describe_aliases(model_name)
      USING ERRCODE = 'no_data_found';
  END IF;
  SELECT h.to_version INTO found_version FROM mad.alias_history h
  WHERE h.model = model_name AND h.alias = alias_name AND h.moved_at <= alias_at.at
  ORDER BY h.moved_at DESC, h.id DESC LIMIT 1;
  RETURN found_version;
END
$$;

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.alias_at(text, text, timestamp with time zone), mad.check_name(text, text),
  mad.describe_aliases(text), mad.describe_models(), mad.describe_versions(text), mad.max_model_bytes(),
  mad.push_model(text, bytea, jsonb), mad.require_model(text), mad.require_role(text, text), mad.resolve(text, text),
  mad.rollback_alias(text, text), mad.set_alias(text, text, integer, text), mad.setting_int(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.push_model(text, bytea, jsonb), mad.rollback_alias(text, text),
  mad.set_alias(text, text, integer, text) TO mad_admin;
GRANT EXECUTE ON FUNCTION mad.resolve(text, text) TO mad_admin, mad_user, mad_sidecar;
GRANT EXECUTE ON FUNCTION mad.alias_at(text, text, timestamp with time zone), mad.require_model(text) TO mad_admin, mad_user;
GRANT EXECUTE ON FUNCTION mad.setting_int(text, bigint) TO mad_sidecar;

-- Edge devices (docs/SYNC.md): a device holds the embedded store (one SQLite file), pulls model versions, aliases
-- and deployments from here, scores offline, and pushes its prediction-table rows back into mad.edge_predictions.
--
-- Roles: a device's login is IN ROLE mad_user, mad_device. Pulling reads the registry as mad_user does, and the
-- ONNX bytes through mad.device_version_bytes, which only mad_device may call: 008 keeps model_versions.onnx from
-- mad_user, and a device is the one reader that must carry the bytes away. Pushing writes rows, so it needs
-- mad_device too, and nothing else may insert them. A device is owned by
-- the role that first named it: another role (another device's login) can neither push as it nor touch its rows,
-- and rows are only ever added (ON CONFLICT DO NOTHING), so nobody overwrites what a device has pushed.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mad_device') THEN
    BEGIN
      CREATE ROLE mad_device NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      -- Created by a concurrent migration of another database. Reading pg_roles takes a new lock on pg_authid
      -- (the failed CREATE's went with its subtransaction), which makes this session drop its cached "no such
      -- role" before the GRANT below looks the role up.
      PERFORM FROM pg_catalog.pg_roles WHERE rolname = 'mad_device';
    END;
  END IF;
END
$$;

COMMENT ON ROLE mad_device IS 'ModelAsData: an edge device pushing its predictions (mad sync push).';
GRANT USAGE ON SCHEMA mad TO mad_device;

CREATE TABLE mad.devices (
  id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.-]*$' AND length(id) <= 63),
  -- The role that first named the device; only it (or mad_admin) may record for it.
  owner text NOT NULL DEFAULT mad.caller_role(),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_pull_at timestamptz,
  last_push_at timestamptz,
  -- What the last pull copied: [{"model": ..., "version": ...}, ...].
  versions jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(versions) = 'array')
);

CREATE TABLE mad.edge_predictions (
  device text NOT NULL REFERENCES mad.devices (id),
  prediction_table text NOT NULL,
  key text NOT NULL,              -- the key's canonical text, as mad.key_text spells it
  model text NOT NULL,
  version int NOT NULL,
  arm text NOT NULL CHECK (arm IN ('champion', 'canary')),
  outputs jsonb NOT NULL CHECK (jsonb_typeof(outputs) = 'object'),
  scored_at timestamptz NOT NULL,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (device, prediction_table, key, scored_at),
  FOREIGN KEY (model, version) REFERENCES mad.model_versions (model, version)
);

-- Reports read one prediction table over a time window, across devices.
CREATE INDEX edge_predictions_window ON mad.edge_predictions (prediction_table, scored_at);

GRANT SELECT ON mad.devices, mad.edge_predictions TO mad_admin, mad_user;
-- A device sees its own registration (the push's bookkeeping), not the fleet.
GRANT SELECT ON mad.devices TO mad_device;

-- Returns the device's id once the caller may act for it: a new id is registered to the caller; a known one must be
-- the caller's own (a mad_admin member may act for any).
CREATE FUNCTION mad.claim_device(device text) RETURNS text
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  found_owner text;
BEGIN
  IF device IS NULL OR device !~ '^[a-z0-9][a-z0-9_.-]*$' OR length(device) > 63 THEN
    RAISE EXCEPTION 'Invalid device id %: use lower-case letters, digits, ''_'', ''.'' and ''-'', at most 63 characters.',
      coalesce(quote_literal(device), 'NULL') USING ERRCODE = 'invalid_name';
  END IF;
  INSERT INTO mad.devices (id) VALUES (device) ON CONFLICT (id) DO NOTHING;
  SELECT d.owner INTO found_owner FROM mad.devices d WHERE d.id = device FOR UPDATE;
  IF found_owner <> mad.caller_role() AND NOT pg_catalog.pg_has_role(mad.caller_role(), 'mad_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'permission denied to act for device %: it belongs to role %, not %', quote_literal(device),
      quote_ident(found_owner), quote_ident(mad.caller_role())
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Each device pushes with its own login; pick another --device id or log in as its role.';
  END IF;
  RETURN device;
END
$$;

-- A pull's bookkeeping: when, and which versions the device now holds.
CREATE FUNCTION mad.record_pull(device text, versions jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  device_id text;
BEGIN
  IF versions IS NULL OR jsonb_typeof(versions) <> 'array' THEN
    RAISE EXCEPTION 'The versions of a pull must be a JSON array.' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  device_id := mad.claim_device(device);
  UPDATE mad.devices d SET last_pull_at = now(), versions = record_pull.versions WHERE d.id = device_id;
END
$$;

-- A push: rows [{"prediction_table", "key", "model", "version", "arm", "outputs", "scored_at"}, ...] added for the
-- device, refused whole when any names a version this database does not hold; rows already pushed are skipped, so
-- pushing twice adds nothing. Returns the number of rows added.
CREATE FUNCTION mad.ingest_predictions(device text, batch jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  device_id text;
  unknown text;
  added bigint;
BEGIN
  PERFORM mad.require_role('mad_device', 'push device predictions');
  device_id := mad.claim_device(device);
  IF batch IS NULL OR jsonb_typeof(batch) <> 'array' THEN
    RAISE EXCEPTION 'The rows of a push must be a JSON array.' USING ERRCODE = 'invalid_parameter_value';
  END IF;

  SELECT string_agg(DISTINCT format('%s version %s', r.model, r.version), ', ') INTO unknown
  FROM jsonb_to_recordset(batch) AS r(model text, version int)
  WHERE NOT EXISTS (SELECT FROM mad.model_versions v WHERE v.model = r.model AND v.version = r.version);
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION 'The push names versions this database does not hold (%): nothing was added.', unknown
      USING ERRCODE = 'no_data_found',
            HINT = 'Push the models here first, or pull the device from the database it was scored against.';
  END IF;

  INSERT INTO mad.edge_predictions (device, prediction_table, key, model, version, arm, outputs, scored_at)
  SELECT device_id, r.prediction_table, r.key, r.model, r.version, r.arm, r.outputs, r.scored_at
  FROM jsonb_to_recordset(batch) AS r(prediction_table text, key text, model text, version int, arm text, outputs jsonb, scored_at timestamptz)
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS added = ROW_COUNT;

  UPDATE mad.devices d SET last_push_at = now() WHERE d.id = device_id;
  RETURN added;
END
$$;

-- A pull's bytes: a ready version's ONNX blob, for a device to verify (sha256) and store.
CREATE FUNCTION mad.device_version_bytes(model text, version int) RETURNS bytea
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  blob bytea;
BEGIN
  PERFORM mad.require_role('mad_device', 'pull model bytes to a device');
  SELECT v.onnx INTO blob FROM mad.model_versions v
  WHERE v.model = device_version_bytes.model AND v.version = device_version_bytes.version AND v.status = 'ready';
  IF blob IS NULL THEN
    RAISE EXCEPTION 'Model % has no ready version %; %.', quote_literal(device_version_bytes.model), device_version_bytes.version,
      mad.describe_versions(device_version_bytes.model) USING ERRCODE = 'no_data_found';
  END IF;
  RETURN blob;
END
$$;

REVOKE ALL ON FUNCTION mad.claim_device(text), mad.record_pull(text, jsonb), mad.ingest_predictions(text, jsonb),
  mad.device_version_bytes(text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.device_version_bytes(text, int) TO mad_device;
GRANT EXECUTE ON FUNCTION mad.record_pull(text, jsonb) TO mad_admin, mad_user, mad_device;
GRANT EXECUTE ON FUNCTION mad.ingest_predictions(text, jsonb) TO mad_device;

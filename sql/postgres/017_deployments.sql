-- Deployments (docs/DEPLOYMENTS.md): what an alias serves. The alias (mad.aliases) is the champion; a deployment adds
-- to it a canary (a second version and the percent of keys it serves, chosen by the published sticky hash mad.bucket
-- over the row's key, so a key always gets the same version), optional rolling steps the sidecars advance on
-- schedule, and a shadow version scored beside the served one and never served. mad.deploy is blue-green: it moves
-- the alias in the caller's transaction, ending any canary; mad.set_alias and mad.rollback_alias keep moving the
-- champion as before, so mad.alias_at and mad.deployment_at agree on it.
--
-- Every change is a row of mad.deployment_history (the state after it, who, why), so mad.deployment_at answers what
-- was deployed at any past moment. Only mad_admin deploys; the sidecar protocol (mad.advance_deployments) is
-- mad_sidecar's. Refresh jobs fix their deployment when they start (mad.jobs.canary_version, canary_percent, seed).

-- The sticky hash ---------------------------------------------------------------------------------------------------

-- bucket = first 4 bytes of sha256(utf8(seed || ':' || key_text)), big-endian unsigned, / 2^32; in [0, 1).
-- sha256(bytea) is built into PostgreSQL 11 and later, so pgcrypto is not needed. The same in C#
-- (ModelAsData.Core.Deployments.StickyBucket) and on SQLite connections (bucket()).
CREATE FUNCTION mad.bucket(seed bigint, key_text text) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = mad, pg_temp AS $$
  SELECT ((get_byte(h, 0)::bigint << 24) | (get_byte(h, 1) << 16) | (get_byte(h, 2) << 8) | get_byte(h, 3))::double precision
         / 4294967296.0
  FROM (SELECT pg_catalog.sha256(pg_catalog.convert_to(seed::text || ':' || key_text, 'UTF8')) AS h) s;
$$;

-- A key's canonical text, the one place PostgreSQL spells it: each key column's text form (integers in decimal, text
-- as is), a composite key's values joined by U+001F. mad.key_text(customer_id::text) or mad.key_text(a::text, b).
CREATE FUNCTION mad.key_text(VARIADIC key_values text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = mad, pg_temp AS $$
BEGIN
  IF key_values IS NULL OR cardinality(key_values) = 0 OR array_position(key_values, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'A key value is NULL; a deployment routes only rows whose key columns are all set.'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  RETURN array_to_string(key_values, U&'\001F');
END
$$;

-- Tables ------------------------------------------------------------------------------------------------------------

INSERT INTO mad.settings (name, value, description) VALUES
  ('gate_min_rows', '100', 'A rolling canary''s error-rate gate judges only once the canary has scored this many rows.'),
  ('gate_error_margin_permille', '10', 'The error-rate gate fails when the canary''s per-row error rate exceeds the champion''s by more than this (per mille).');

CREATE TABLE mad.deployments (
  model text NOT NULL,
  alias text NOT NULL,
  -- The sticky hash's seed: a new canary gets a new one, so experiments are independent.
  seed bigint NOT NULL,
  canary_version int,
  canary_percent double precision CHECK (canary_percent > 0 AND canary_percent <= 100),
  -- Rolling: the percents the canary steps through, rising; it is at canary_percent and moves at next_step_at.
  steps double precision[],
  step_every interval CHECK (step_every > interval '0'),
  next_step_at timestamptz,
  shadow_version int,
  shadow_percent double precision CHECK (shadow_percent > 0 AND shadow_percent <= 100),
  updated_by text NOT NULL DEFAULT mad.caller_role(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (model, alias),
  FOREIGN KEY (model, alias) REFERENCES mad.aliases (model, alias),
  FOREIGN KEY (model, canary_version) REFERENCES mad.model_versions (model, version),
  FOREIGN KEY (model, shadow_version) REFERENCES mad.model_versions (model, version),
  CONSTRAINT deployments_canary_has_percent CHECK ((canary_version IS NULL) = (canary_percent IS NULL)),
  CONSTRAINT deployments_shadow_has_percent CHECK ((shadow_version IS NULL) = (shadow_percent IS NULL)),
  CONSTRAINT deployments_steps_need_canary CHECK (next_step_at IS NULL OR (canary_version IS NOT NULL AND step_every IS NOT NULL))
);

-- The sidecars look for due steps every heartbeat.
CREATE INDEX deployments_due ON mad.deployments (next_step_at) WHERE next_step_at IS NOT NULL;

CREATE TABLE mad.deployment_history (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  model text NOT NULL,
  alias text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('deploy', 'canary', 'step', 'shadow', 'promote', 'abort', 'gate')),
  -- The deployment after the change; version is the champion (the alias).
  version int NOT NULL,
  canary_version int,
  canary_percent double precision,
  shadow_version int,
  shadow_percent double precision,
  seed bigint,
  changed_by text NOT NULL DEFAULT mad.caller_role(),
  -- clock_timestamp, as alias_history: two changes in one transaction keep their order in time.
  changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  reason text
);

CREATE INDEX deployment_history_lookup ON mad.deployment_history (model, alias, changed_at DESC, id DESC);

GRANT SELECT ON mad.deployments, mad.deployment_history TO mad_admin, mad_user, mad_sidecar;

-- A refresh job fixes its deployment when it starts: one deployment per job, never a mix (blue-green switches and
-- canary steps during a job apply to the next one). NULL canary_version: every row is the champion's (jobs.version).
ALTER TABLE mad.jobs ADD COLUMN canary_version int, ADD COLUMN canary_percent double precision, ADD COLUMN seed bigint;
-- 008 granted mad_user the columns of mad.jobs one by one; these are as visible as jobs.version.
GRANT SELECT (canary_version, canary_percent, seed) ON mad.jobs TO mad_user;

-- Helpers -----------------------------------------------------------------------------------------------------------

-- Raises, naming the versions that exist, unless the version is ready; what is the role it is to take ('the canary').
CREATE FUNCTION mad.require_ready_version(model_name text, model_version int, what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  candidate mad.model_versions%ROWTYPE;
BEGIN
  SELECT * INTO candidate FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Model % has no version %; %.', quote_literal(model_name), coalesce(model_version::text, 'NULL'), mad.describe_versions(model_name)
      USING ERRCODE = 'no_data_found';
  ELSIF candidate.status = 'pending' THEN
    RAISE EXCEPTION 'Cannot deploy %@% as %: it is pending, and only a ready version is served; %.', model_name, model_version, what, mad.describe_versions(model_name)
      USING ERRCODE = '55M01', HINT = 'A running sidecar (`mad serve`) validates pending versions; try again once it is ready.';
  ELSIF candidate.status = 'rejected' THEN
    RAISE EXCEPTION 'Cannot deploy %@% as %: it was rejected (%); %.', model_name, model_version, what, candidate.reason, mad.describe_versions(model_name)
      USING ERRCODE = '55M01', HINT = 'Push a model ONNX Runtime can load, then deploy its version.';
  END IF;
END
$$;

-- The checks every deployment change starts with, and its lock: the names, the model, and a row lock on the model
-- that serialises deployments of one model, so that "a canary is running" is decided once.
CREATE FUNCTION mad.lock_deployments(model_name text, alias_name text) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.check_name(model_name, 'model');
  PERFORM mad.check_name(alias_name, 'alias');
  PERFORM mad.require_model(model_name);
  PERFORM FROM mad.models m WHERE m.name = model_name FOR NO KEY UPDATE;
END
$$;

-- The alias's champion, raising "not found" naming the aliases when it does not exist.
CREATE FUNCTION mad.require_alias(model_name text, alias_name text) RETURNS int
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  found_version int;
BEGIN
  SELECT a.version INTO found_version FROM mad.aliases a WHERE a.model = model_name AND a.alias = alias_name;
  IF found_version IS NULL THEN
    RAISE EXCEPTION 'Model % has no alias %; %.', quote_literal(model_name), quote_literal(alias_name), mad.describe_aliases(model_name)
      USING ERRCODE = 'no_data_found', HINT = format('Deploy a first version with: SELECT mad.deploy(%L, %L, <version>);', model_name, alias_name);
  END IF;
  RETURN found_version;
END
$$;

-- Raises unless version takes the inputs champion does and decodes into the same columns (as mad.refresh compares
-- them): a canary or shadow reads the same features and writes into the same prediction tables.
CREATE FUNCTION mad.require_same_columns(model_name text, champion int, other int, what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  columns_of jsonb[];
BEGIN
  SELECT array_agg(jsonb_build_array(v.signature -> 'inputs',
                                     (SELECT jsonb_agg(jsonb_build_array(c.value -> 'type', c.value -> 'output', c.value -> 'offset'))
                                      FROM jsonb_array_elements(v.signature -> 'columns') c)) ORDER BY v.version = champion DESC)
  INTO columns_of FROM mad.model_versions v WHERE v.model = model_name AND v.version IN (champion, other);
  IF columns_of[1] IS DISTINCT FROM columns_of[2] THEN
    RAISE EXCEPTION 'Version % of % cannot be % of version %: it takes other inputs or decodes into columns (%) that differ from version %''s (%).', other, model_name, what, champion,
      (SELECT string_agg(c.value ->> 'name', ', ') FROM mad.model_versions v, jsonb_array_elements(v.signature -> 'columns') c WHERE v.model = model_name AND v.version = other),
      champion,
      (SELECT string_agg(c.value ->> 'name', ', ') FROM mad.model_versions v, jsonb_array_elements(v.signature -> 'columns') c WHERE v.model = model_name AND v.version = champion)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Serve it with mad.deploy (prediction tables then need recreating), or push a version with the same outputs.';
  END IF;
END
$$;

-- Records the deployment of model@alias as it now is.
CREATE FUNCTION mad.record_deployment(model_name text, alias_name text, change text, why text) RETURNS void
LANGUAGE sql SET search_path = mad, pg_temp AS $$
  INSERT INTO mad.deployment_history (model, alias, kind, version, canary_version, canary_percent, shadow_version, shadow_percent, seed, reason)
  SELECT a.model, a.alias, change, a.version, d.canary_version, d.canary_percent, d.shadow_version, d.shadow_percent, d.seed, why
  FROM mad.aliases a LEFT JOIN mad.deployments d USING (model, alias)
  WHERE a.model = model_name AND a.alias = alias_name;
  SELECT pg_notify('mad_models', json_build_object('event', 'deployment', 'model', model_name, 'alias', alias_name, 'change', change)::text);
$$;

CREATE FUNCTION mad.new_seed() RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = mad, pg_temp AS $$
  SELECT floor(random() * 9007199254740991)::bigint;
$$;

-- The alias a binding's model reference is served through, or NULL when it names a version: 'churn' is served
-- through churn@production when that alias exists (as mad.resolve reads it), 'churn@staging' through staging.
CREATE FUNCTION mad.reference_alias(reference text) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE
    WHEN position('@' IN reference) = 0 THEN
      (SELECT a.alias FROM mad.aliases a WHERE a.model = reference AND a.alias = 'production')
    WHEN split_part(reference, '@', 2) ~ '^[0-9]{1,9}$' THEN NULL
    ELSE split_part(reference, '@', 2)
  END;
$$;

-- The admin functions -----------------------------------------------------------------------------------------------

-- Basic / blue-green: the alias serves this version at every door from the caller's commit on, and any canary ends
-- (the shadow stays). Creates the alias when it does not exist. Returns the version now served.
CREATE FUNCTION mad.deploy(model text, alias text, version int, reason text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := deploy.model;
  alias_name text := deploy.alias;
BEGIN
  PERFORM mad.require_role('mad_admin', 'deploy');
  PERFORM mad.lock_deployments(model_name, alias_name);
  PERFORM mad.require_ready_version(model_name, deploy.version, 'the version served');
  PERFORM mad.set_alias(model_name, alias_name, deploy.version, coalesce(deploy.reason, 'mad.deploy'));
  UPDATE mad.deployments d SET canary_version = NULL, canary_percent = NULL, steps = NULL, step_every = NULL, next_step_at = NULL,
                               updated_by = mad.caller_role(), updated_at = clock_timestamp()
  WHERE d.model = model_name AND d.alias = alias_name;
  PERFORM mad.record_deployment(model_name, alias_name, 'deploy', deploy.reason);
  RETURN deploy.version;
END
$$;

-- Canary: percent of the keys (by mad.bucket under a new seed) get version; with steps, the sidecars raise the
-- percent through them every step_every, and promote after the last step reaches 100. A percent given with steps is
-- where it starts (else the first step); it then takes the steps above it.
CREATE FUNCTION mad.deploy_canary(model text, alias text, version int, percent double precision DEFAULT NULL,
                                  steps double precision[] DEFAULT NULL, step_every interval DEFAULT NULL, reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := deploy_canary.model;
  alias_name text := deploy_canary.alias;
  champion int;
  running mad.deployments%ROWTYPE;
  start double precision;
  step double precision;
  previous double precision;
  new_seed bigint := mad.new_seed();
BEGIN
  PERFORM mad.require_role('mad_admin', 'deploy');
  PERFORM mad.lock_deployments(model_name, alias_name);
  champion := mad.require_alias(model_name, alias_name);
  PERFORM mad.require_ready_version(model_name, deploy_canary.version, 'a canary');
  IF deploy_canary.version = champion THEN
    RAISE EXCEPTION '%@% already serves version % to every key; a canary is another version; %.', model_name, alias_name, champion, mad.describe_versions(model_name)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM mad.require_same_columns(model_name, champion, deploy_canary.version, 'a canary');
  SELECT * INTO running FROM mad.deployments d WHERE d.model = model_name AND d.alias = alias_name;
  IF running.canary_version IS NOT NULL THEN
    RAISE EXCEPTION '%@% already runs a canary: version % at % %% beside version %.', model_name, alias_name, running.canary_version, running.canary_percent, champion
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('End it first: SELECT mad.promote(%L, %L); or SELECT mad.abort_deployment(%L, %L);', model_name, alias_name, model_name, alias_name);
  END IF;

  IF deploy_canary.steps IS NOT NULL THEN
    IF cardinality(deploy_canary.steps) = 0 THEN
      RAISE EXCEPTION 'steps is empty: give the percents the canary steps through, rising, e.g. ''{5,25,50,100}''.' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH step IN ARRAY deploy_canary.steps LOOP
      IF step IS NULL OR step <= 0 OR step > 100 THEN
        RAISE EXCEPTION 'Step % of % is outside (0, 100]: each step is a percent of keys above 0 and at most 100.', coalesce(step::text, 'NULL'), deploy_canary.steps
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF step <= previous THEN
        RAISE EXCEPTION 'Steps % do not rise: % follows %. Give each step above the one before, e.g. ''{5,25,50,100}''.', deploy_canary.steps, step, previous
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      previous := step;
    END LOOP;
    IF deploy_canary.step_every IS NULL OR deploy_canary.step_every <= interval '0' THEN
      RAISE EXCEPTION 'Steps % need step_every, the time between steps (e.g. step_every => ''1 hour''); it is %.', deploy_canary.steps, coalesce(deploy_canary.step_every::text, 'not given')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  ELSIF deploy_canary.step_every IS NOT NULL THEN
    RAISE EXCEPTION 'step_every % is given without steps: give steps => ''{5,25,50,100}'' too, or leave both out for a fixed percent.', deploy_canary.step_every
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  start := coalesce(deploy_canary.percent, deploy_canary.steps[1]);
  IF start IS NULL OR start <= 0 OR start > 100 THEN
    RAISE EXCEPTION 'The canary''s percent % is outside (0, 100]: give the percent of keys that get version % (e.g. percent => 10).', coalesce(start::text, 'NULL'), deploy_canary.version
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  INSERT INTO mad.deployments AS d (model, alias, seed, canary_version, canary_percent, steps, step_every, next_step_at)
  VALUES (model_name, alias_name, new_seed, deploy_canary.version, start, deploy_canary.steps, deploy_canary.step_every,
          CASE WHEN deploy_canary.steps IS NOT NULL THEN clock_timestamp() + deploy_canary.step_every END)
  ON CONFLICT (model, alias) DO UPDATE SET seed = EXCLUDED.seed, canary_version = EXCLUDED.canary_version, canary_percent = EXCLUDED.canary_percent,
    steps = EXCLUDED.steps, step_every = EXCLUDED.step_every, next_step_at = EXCLUDED.next_step_at,
    updated_by = mad.caller_role(), updated_at = clock_timestamp();
  PERFORM mad.record_deployment(model_name, alias_name, 'canary', deploy_canary.reason);
  RETURN new_seed;
END
$$;

-- Shadow: version is scored beside the served one for percent of the keys, stored (mad_out.<name>__shadow, the
-- prediction log marked shadow), never served. Replaces the alias's shadow, if any.
CREATE FUNCTION mad.deploy_shadow(model text, alias text, version int, percent double precision DEFAULT 100, reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := deploy_shadow.model;
  alias_name text := deploy_shadow.alias;
  champion int;
  used_seed bigint;
BEGIN
  PERFORM mad.require_role('mad_admin', 'deploy');
  PERFORM mad.lock_deployments(model_name, alias_name);
  champion := mad.require_alias(model_name, alias_name);
  PERFORM mad.require_ready_version(model_name, deploy_shadow.version, 'a shadow');
  IF deploy_shadow.version = champion THEN
    RAISE EXCEPTION '%@% serves version % already; a shadow is another version, scored beside it; %.', model_name, alias_name, champion, mad.describe_versions(model_name)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM mad.require_same_columns(model_name, champion, deploy_shadow.version, 'a shadow');
  IF deploy_shadow.percent IS NULL OR deploy_shadow.percent <= 0 OR deploy_shadow.percent > 100 THEN
    RAISE EXCEPTION 'The shadow''s percent % is outside (0, 100]: give the percent of keys scored by version % as well (100: all).', coalesce(deploy_shadow.percent::text, 'NULL'), deploy_shadow.version
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO mad.deployments AS d (model, alias, seed, shadow_version, shadow_percent)
  VALUES (model_name, alias_name, mad.new_seed(), deploy_shadow.version, deploy_shadow.percent)
  ON CONFLICT (model, alias) DO UPDATE SET shadow_version = EXCLUDED.shadow_version, shadow_percent = EXCLUDED.shadow_percent,
    updated_by = mad.caller_role(), updated_at = clock_timestamp()
  RETURNING d.seed INTO used_seed;
  PERFORM mad.record_deployment(model_name, alias_name, 'shadow', deploy_shadow.reason);
  RETURN used_seed;
END
$$;

-- Ends a running canary by making its version the alias's (every key gets it). Returns the version now served.
CREATE FUNCTION mad.promote(model text, alias text, reason text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := promote.model;
  alias_name text := promote.alias;
  champion int;
  canary int;
BEGIN
  PERFORM mad.require_role('mad_admin', 'deploy');
  PERFORM mad.lock_deployments(model_name, alias_name);
  champion := mad.require_alias(model_name, alias_name);
  SELECT d.canary_version INTO canary FROM mad.deployments d WHERE d.model = model_name AND d.alias = alias_name;
  IF canary IS NULL THEN
    RAISE EXCEPTION '%@% runs no canary to promote: it serves version % to every key; %.', model_name, alias_name, champion, mad.describe_versions(model_name)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('Start one with: SELECT mad.deploy_canary(%L, %L, <version>, percent => 10); or switch at once with mad.deploy.', model_name, alias_name);
  END IF;
  RETURN mad.finish_canary(model_name, alias_name, true, 'promote', coalesce(promote.reason, 'promoted'));
END
$$;

-- Ends the canary (and the shadow): every key gets the champion again at once. Returns the version now served.
CREATE FUNCTION mad.abort_deployment(model text, alias text, reason text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  model_name text := abort_deployment.model;
  alias_name text := abort_deployment.alias;
  champion int;
  running mad.deployments%ROWTYPE;
BEGIN
  PERFORM mad.require_role('mad_admin', 'deploy');
  PERFORM mad.lock_deployments(model_name, alias_name);
  champion := mad.require_alias(model_name, alias_name);
  SELECT * INTO running FROM mad.deployments d WHERE d.model = model_name AND d.alias = alias_name;
  IF running.canary_version IS NULL AND running.shadow_version IS NULL THEN
    RAISE EXCEPTION '%@% runs no canary or shadow to abort: it serves version % to every key.', model_name, alias_name, champion
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('To serve another version use mad.deploy; to point the alias back use: SELECT mad.rollback_alias(%L, %L);', model_name, alias_name);
  END IF;
  UPDATE mad.deployments d SET shadow_version = NULL, shadow_percent = NULL WHERE d.model = model_name AND d.alias = alias_name;
  RETURN mad.finish_canary(model_name, alias_name, false, 'abort', coalesce(abort_deployment.reason, 'aborted'));
END
$$;

-- Internal: ends the canary of model@alias (its row locked by the caller), promoting it or not, and records why.
CREATE FUNCTION mad.finish_canary(model_name text, alias_name text, make_champion boolean, change text, why text) RETURNS int
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  canary int;
BEGIN
  SELECT d.canary_version INTO canary FROM mad.deployments d WHERE d.model = model_name AND d.alias = alias_name;
  IF make_champion AND canary IS NOT NULL THEN
    -- Not mad.set_alias: a sidecar promotes too (the last rolling step), and set_alias is mad_admin's.
    INSERT INTO mad.alias_history (model, alias, from_version, to_version, kind, reason)
    SELECT a.model, a.alias, a.version, canary, 'set', why FROM mad.aliases a WHERE a.model = model_name AND a.alias = alias_name;
    UPDATE mad.aliases a SET version = canary, updated_by = mad.caller_role(), updated_at = now()
    WHERE a.model = model_name AND a.alias = alias_name;
    PERFORM pg_notify('mad_models', json_build_object('event', 'alias', 'model', model_name, 'alias', alias_name, 'version', canary)::text);
  END IF;
  UPDATE mad.deployments d SET canary_version = NULL, canary_percent = NULL, steps = NULL, step_every = NULL, next_step_at = NULL,
                               updated_by = mad.caller_role(), updated_at = clock_timestamp()
  WHERE d.model = model_name AND d.alias = alias_name;
  PERFORM mad.record_deployment(model_name, alias_name, change, why);
  RETURN (SELECT a.version FROM mad.aliases a WHERE a.model = model_name AND a.alias = alias_name);
END
$$;

-- What model@alias served at a past moment: the champion as mad.alias_at answers it, and the canary and shadow of the
-- last deployment change at or before it. NULLs before the alias existed.
CREATE FUNCTION mad.deployment_at(model text, alias text, at timestamptz, OUT version int, OUT canary_version int,
                                  OUT canary_percent double precision, OUT shadow_version int, OUT shadow_percent double precision, OUT seed bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  change mad.deployment_history%ROWTYPE;
BEGIN
  version := mad.alias_at(deployment_at.model, deployment_at.alias, deployment_at.at);
  SELECT * INTO change FROM mad.deployment_history h
  WHERE h.model = deployment_at.model AND h.alias = deployment_at.alias AND h.changed_at <= deployment_at.at
  ORDER BY h.changed_at DESC, h.id DESC LIMIT 1;
  IF FOUND AND version IS NOT NULL THEN
    canary_version := change.canary_version;
    canary_percent := change.canary_percent;
    shadow_version := change.shadow_version;
    shadow_percent := change.shadow_percent;
    seed := change.seed;
  END IF;
END
$$;

-- Every prediction row records its arm -------------------------------------------------------------------------------

-- 012's mad.create_prediction_table, with one change (marked 017): mad_out tables get arm, 'champion' or 'canary'
-- (and an output named arm is renamed predicted_arm, as model_version is).
CREATE OR REPLACE FUNCTION mad.create_prediction_table(name text, source regclass, key text[], model text, features jsonb DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  table_name text := create_prediction_table.name;
  model_name text := split_part(create_prediction_table.model, '@', 1);
  model_version int;
  found_version mad.model_versions%ROWTYPE;
  key_column text;
  hit record;
  key_names text[] := '{}';
  key_types text[] := '{}';
  mapped jsonb;
  output_columns jsonb := '[]';
  output_column jsonb;
  column_name text;
  definitions text[] := '{}';
  binding mad.prediction_tables;
BEGIN
  PERFORM mad.check_name(table_name, 'prediction table');
  IF create_prediction_table.source IS NULL THEN
    RAISE EXCEPTION 'Give the source table whose rows are scored.' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM mad.require_source_access(create_prediction_table.source, 'create a prediction table');
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = create_prediction_table.source) NOT IN ('r', 'p', 'v', 'm', 'f') THEN
    RAISE EXCEPTION '% is not a table or view.', create_prediction_table.source USING ERRCODE = 'wrong_object_type';
  END IF;
  IF key IS NULL OR cardinality(key) = 0 THEN
    RAISE EXCEPTION 'Give the key column(s) that identify a row of %, e.g. key => ''{id}''.', create_prediction_table.source
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM mad.prediction_tables p WHERE p.name = table_name) OR to_regclass(format('mad_out.%I', table_name)) IS NOT NULL THEN
    RAISE EXCEPTION 'Prediction table % already exists; refresh it with: SELECT mad.refresh(%);', quote_literal(table_name), quote_literal(table_name)
      USING ERRCODE = 'unique_violation';
  END IF;

  model_version := mad.resolve_reference(create_prediction_table.model);
  SELECT * INTO found_version FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version;
  PERFORM mad.ready_signature(model_name, model_version);
  IF found_version.signature ->> 'tensor_only' IS NOT NULL THEN
    RAISE EXCEPTION 'Model %@% cannot score rows of a table: %.', model_name, model_version, found_version.signature ->> 'tensor_only'
      USING ERRCODE = '22M01',
            DETAIL = 'It scores as tensors over the Open Inference Protocol (mad serve --http, POST /v2/models/<name>/infer); rows of a table cannot feed it yet.',
            HINT = 'Bind a prediction table to a model whose inputs rows can feed (numeric or text tensors, dynamic only in their first dimension).';
  END IF;

  FOREACH key_column IN ARRAY key LOOP
    SELECT * INTO hit FROM mad.find_column(create_prediction_table.source, key_column);
    IF hit.name IS NULL THEN
      RAISE EXCEPTION 'Table % has no column %; its columns: %.', create_prediction_table.source, quote_literal(key_column),
        mad.describe_columns(create_prediction_table.source) USING ERRCODE = 'undefined_column';
    END IF;
    IF hit.name = ANY (key_names) THEN
      RAISE EXCEPTION 'Key column % is given twice.', quote_ident(hit.name) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    key_names := key_names || hit.name;
    key_types := key_types || hit.type_name;
    definitions := definitions || format('%I %s NOT NULL', hit.name, hit.type_name);
  END LOOP;
  PERFORM mad.require_builtin_keys(create_prediction_table.source, key_names, NULL);

  mapped := mad.map_features(create_prediction_table.source, model_name, found_version.signature,
                             coalesce(create_prediction_table.features, found_version.metadata -> 'features'));

  -- Decoded columns keep their names unless one clashes with a key or trailing column.
  FOR output_column IN SELECT value FROM jsonb_array_elements(found_version.signature -> 'columns') LOOP
    column_name := output_column ->> 'name';
    IF lower(column_name) = ANY (SELECT lower(k) FROM unnest(key_names) k) OR column_name IN ('model_version', 'scored_at', 'error', 'arm') THEN  -- 017: + arm
      column_name := 'predicted_' || column_name;
    END IF;
    output_column := jsonb_set(output_column, '{name}', to_jsonb(column_name));
    output_columns := output_columns || output_column;
    definitions := definitions || format('%I %s', column_name, mad.output_sql_type(output_column ->> 'type'));
  END LOOP;
  definitions := definitions || ARRAY['model_version int NOT NULL', 'scored_at timestamptz NOT NULL', 'error text',
                                     -- 017: the deployment's arm that served the row.
                                     'arm text NOT NULL DEFAULT ''champion'' CHECK (arm IN (''champion'', ''canary''))'];

  -- The trigger sync_readers lets the sidecar read as the owner.
  INSERT INTO mad.prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns)
  VALUES (table_name, create_prediction_table.source, key_names, key_types, create_prediction_table.model, mapped -> 'mapping',
          ARRAY(SELECT jsonb_array_elements_text(mapped -> 'slots')), output_columns)
  RETURNING * INTO binding;
  EXECUTE format('CREATE TABLE mad_out.%I (%s, CONSTRAINT %I PRIMARY KEY (%s))', table_name, array_to_string(definitions, ', '),
                 mad.key_constraint(table_name), mad.key_list(binding, '%I'));
  PERFORM mad.grant_predictions(binding);
  RETURN format('mad_out.%I', table_name)::regclass;
END
$$;

-- The tables that exist, and the build tables of jobs under way, get the column too (their rows were all champions).
DO $$
DECLARE
  existing record;
BEGIN
  FOR existing IN SELECT format('mad_out.%I', p.name) AS relation FROM mad.prediction_tables p
                  UNION ALL SELECT j.build_table FROM mad.jobs j WHERE j.state = 'running' AND j.build_table <> ''
  LOOP
    IF to_regclass(existing.relation) IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS arm text NOT NULL DEFAULT ''champion'' CHECK (arm IN (''champion'', ''canary''))', existing.relation);
    END IF;
  END LOOP;
END
$$;

-- 013's mad.refresh, with two changes (marked 017): the job records the canary it starts under, and the build table
-- keeps the output's defaults and checks.
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
  stale record;
  missing text;
  deployed mad.deployments%ROWTYPE;  -- 017
BEGIN
  PERFORM mad.require_binding_owner(binding, 'refresh ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'refresh ' || quote_ident(binding.name));
  -- An owner that gained CREATEROLE (or the like) since it was bound loses its mad_reader grant here, committed with
  -- the job, whose reads then fail saying why (mad.reader_of).
  PERFORM mad.sync_reader(binding.owner);
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
  -- 017: the job fixes the deployment it starts under (the champion is model_version).
  SELECT d.* INTO deployed FROM mad.deployments d
  WHERE d.model = model_name AND d.alias = mad.reference_alias(binding.model) AND d.canary_version IS NOT NULL;
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
  PERFORM mad.require_builtin_keys(binding.source, binding.key_columns, binding.key_types);

  INSERT INTO mad.jobs (prediction_table, model, version, build_table, tasks_total, rows_total, planned, canary_version, canary_percent, seed)
  VALUES (binding.name, model_name, model_version, '', 1, 0, false, deployed.canary_version, deployed.canary_percent, deployed.seed)  -- 017: + canary
  RETURNING id INTO new_job;
  build := format('mad_build.%I', 'job_' || new_job);
  -- With the primary key from the start: tasks maintain it as they write, overlapped with scoring, instead of one
  -- index build after the last task; it also refuses a key written twice at once.
  -- 017: INCLUDING DEFAULTS, so arm's default survives the swap for writers that do not name it.
  EXECUTE format('CREATE TABLE %s (LIKE mad_out.%I INCLUDING INDEXES INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', build, binding.name);
  EXECUTE format('GRANT SELECT, INSERT ON %s TO mad_sidecar', build);
  INSERT INTO mad.tasks (job_id, ordinal, lo, hi) VALUES (new_job, 0, NULL, NULL);
  UPDATE mad.jobs j SET build_table = build WHERE j.id = new_job;
  PERFORM pg_notify('mad_jobs', json_build_object('event', 'created', 'job', new_job, 'table', binding.name)::text);
  RETURN new_job;
END
$$;

-- Rolling steps and their gates --------------------------------------------------------------------------------------

-- The gates a rolling canary passes before each step: a small extension point. A gate is a function
-- (model text, alias text) RETURNS text, NULL when it passes, else why it fails; any failing gate ends the canary
-- (every key gets the champion again), recorded in the history with its reason. Later checks (drift, outcomes) add rows.
CREATE TABLE mad.deployment_gates (
  name text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]*$'),
  gate regprocedure NOT NULL,
  description text NOT NULL
);
GRANT SELECT ON mad.deployment_gates TO mad_admin, mad_user, mad_sidecar;

-- Per prediction table served through model@alias and arm: rows scored and rows with a per-row error, from the
-- mad_out tables themselves (every row records its arm).
CREATE FUNCTION mad.deployment_rows(model text, alias text)
RETURNS TABLE (prediction_table text, arm text, model_version int, rows_scored bigint, rows_failed bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables;
BEGIN
  FOR binding IN SELECT * FROM mad.prediction_tables p
                 WHERE split_part(p.model, '@', 1) = deployment_rows.model AND mad.reference_alias(p.model) = deployment_rows.alias
                   AND to_regclass(format('mad_out.%I', p.name)) IS NOT NULL
                 ORDER BY p.name LOOP
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, o.arm, o.model_version, count(*), count(o.error) FROM mad_out.%I o GROUP BY o.arm, o.model_version ORDER BY 2, 3',
      binding.name, binding.name);
  END LOOP;
END
$$;

-- The first gate: the canary's per-row error rate against the champion's, once the canary has scored gate_min_rows.
CREATE FUNCTION mad.gate_error_rate(model text, alias text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  canary_rows bigint; canary_failed bigint; champion_rows bigint; champion_failed bigint;
  margin double precision := mad.setting_int('gate_error_margin_permille', 10) / 1000.0;
BEGIN
  SELECT coalesce(sum(r.rows_scored) FILTER (WHERE r.arm = 'canary'), 0), coalesce(sum(r.rows_failed) FILTER (WHERE r.arm = 'canary'), 0),
         coalesce(sum(r.rows_scored) FILTER (WHERE r.arm = 'champion'), 0), coalesce(sum(r.rows_failed) FILTER (WHERE r.arm = 'champion'), 0)
  INTO canary_rows, canary_failed, champion_rows, champion_failed
  FROM mad.deployment_rows(gate_error_rate.model, gate_error_rate.alias) r;
  IF canary_rows < mad.setting_int('gate_min_rows', 100) THEN
    RETURN NULL; -- too few rows to judge
  END IF;
  IF canary_failed::double precision / canary_rows > champion_failed::double precision / greatest(champion_rows, 1) + margin THEN
    RETURN format('the canary''s per-row error rate %s %% (%s of %s rows) exceeds the champion''s %s %% (%s of %s) by more than %s %%',
                  round(100.0 * canary_failed / canary_rows, 2), canary_failed, canary_rows,
                  round(100.0 * champion_failed / greatest(champion_rows, 1), 2), champion_failed, champion_rows, round(100 * margin::numeric, 2));
  END IF;
  RETURN NULL;
END
$$;

INSERT INTO mad.deployment_gates (name, gate, description) VALUES
  ('error_rate', 'mad.gate_error_rate(text, text)', 'The canary''s per-row error rate may exceed the champion''s by at most gate_error_margin_permille.');

-- Called by every sidecar on its heartbeat: takes each rolling canary whose step is due (row lock, SKIP LOCKED, so
-- with several sidecars each step happens exactly once), runs the gates, and either ends it (a gate failed), raises it
-- to its next step, or promotes it (its last step reached 100). Returns how many deployments it changed.
CREATE FUNCTION mad.advance_deployments(sidecar text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  due mad.deployments%ROWTYPE;
  gate record;
  failure text;
  next_percent double precision;
  changed int := 0;
BEGIN
  FOR due IN SELECT * FROM mad.deployments d WHERE d.next_step_at <= clock_timestamp() ORDER BY d.next_step_at
             FOR UPDATE SKIP LOCKED LOOP
    failure := NULL;
    FOR gate IN SELECT g.name, g.gate::oid::regproc AS function FROM mad.deployment_gates g ORDER BY g.name LOOP
      EXECUTE format('SELECT %s($1, $2)', gate.function) INTO failure USING due.model, due.alias;
      IF failure IS NOT NULL THEN
        failure := format('gate %s failed: %s (sidecar %s)', gate.name, failure, advance_deployments.sidecar);
        EXIT;
      END IF;
    END LOOP;

    IF failure IS NOT NULL THEN
      PERFORM mad.finish_canary(due.model, due.alias, false, 'gate', failure);
    ELSE
      SELECT min(s) INTO next_percent FROM unnest(due.steps) s WHERE s > due.canary_percent;
      IF next_percent IS NOT NULL THEN
        UPDATE mad.deployments d SET canary_percent = next_percent, next_step_at = clock_timestamp() + d.step_every,
                                     updated_by = mad.caller_role(), updated_at = clock_timestamp()
        WHERE d.model = due.model AND d.alias = due.alias;
        PERFORM mad.record_deployment(due.model, due.alias, 'step',
          format('step to %s %% of %s, on schedule (sidecar %s)', next_percent, due.steps, advance_deployments.sidecar));
      ELSIF due.canary_percent >= 100 THEN
        PERFORM mad.finish_canary(due.model, due.alias, true, 'promote',
          format('promoted after its last step, on schedule (sidecar %s)', advance_deployments.sidecar));
      ELSE
        UPDATE mad.deployments d SET next_step_at = NULL WHERE d.model = due.model AND d.alias = due.alias;
        PERFORM mad.record_deployment(due.model, due.alias, 'step',
          format('last step reached; stays at %s %% until promoted or aborted (sidecar %s)', due.canary_percent, advance_deployments.sidecar));
      END IF;
    END IF;
    changed := changed + 1;
  END LOOP;
  RETURN changed;
END
$$;

-- The deployment report: per deployment and arm, the version, its share, rows scored and failed in the prediction
-- tables served through it, the error rate, and the current step.
CREATE VIEW mad.deployment_report AS
  SELECT d.model, d.alias, arms.arm, arms.version, arms.percent, coalesce(sum(r.rows_scored), 0)::bigint AS rows_scored,
         coalesce(sum(r.rows_failed), 0)::bigint AS rows_failed,
         CASE WHEN sum(r.rows_scored) > 0 THEN sum(r.rows_failed)::double precision / sum(r.rows_scored) END AS error_rate,
         d.steps, d.next_step_at, d.seed
  FROM mad.deployments d
  JOIN mad.aliases a USING (model, alias)
  CROSS JOIN LATERAL (VALUES ('champion', a.version, 100 - coalesce(d.canary_percent, 0)),
                             ('canary', d.canary_version, d.canary_percent),
                             ('shadow', d.shadow_version, d.shadow_percent)) arms (arm, version, percent)
  LEFT JOIN LATERAL mad.deployment_rows(d.model, d.alias) r ON r.arm = arms.arm AND r.model_version = arms.version
  WHERE arms.version IS NOT NULL
  GROUP BY d.model, d.alias, arms.arm, arms.version, arms.percent, d.steps, d.next_step_at, d.seed;
-- mad_admin only: it counts the rows of every prediction table served through a deployment, whoever owns them.
GRANT SELECT ON mad.deployment_report TO mad_admin;

-- Streaming does not route by key yet (docs/DEPLOYMENTS.md): every streamed row is the champion's, and says so.
-- 007's mad.stream_plan, with one change (marked 017): the upsert sets arm from EXCLUDED, which holds the column's
-- default 'champion' (the insert does not name it), so a key a canary refresh scored and the stream then re-scored
-- does not keep arm 'canary' beside the champion's version.
CREATE OR REPLACE FUNCTION mad.stream_plan(table_name text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  key_count int;
  reads record;
  model_name text;
  model_version int;
  claimed_keys text;
  join_keys text;
  output_types text[];
  parameters text[];
  selected text[];
  updates text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  binding := mad.require_prediction_table(table_name);
  key_count := cardinality(binding.key_columns);
  IF NOT binding.watched THEN
    RAISE EXCEPTION 'Prediction table % is not watched.', quote_literal(table_name) USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT * INTO reads FROM mad.feature_reads(binding);
  model_name := split_part(binding.model, '@', 1);
  model_version := mad.resolve_reference(binding.model);
  PERFORM mad.ready_signature(model_name, model_version);
  claimed_keys := 'jsonb_array_elements(pg_catalog.current_setting(''mad.stream_keys'')::jsonb) k';
  join_keys := mad.key_list(binding, 's.%1$I = (k.value ->> %4$s)::%2$s', ' AND ');
  output_types := ARRAY(SELECT mad.output_sql_type(c.value ->> 'type') FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n) ORDER BY n);
  -- Parameters: $1..$k the keys as text, then each output column (array-valued ones as text literals), the errors, the version.
  parameters := ARRAY[mad.key_list(binding, '$%3$s::text[]')]
             || ARRAY(SELECT format('$%s::%s', key_count + n, CASE WHEN t LIKE '%[]' THEN 'text[]' ELSE t || '[]' END)
                      FROM unnest(output_types) WITH ORDINALITY u(t, n))
             || format('$%s::text[]', key_count + cardinality(output_types) + 1);
  selected := ARRAY[mad.key_list(binding, 'u.k%3$s::%2$s')]
           || ARRAY(SELECT CASE WHEN t LIKE '%[]' THEN format('u.c%s::%s', n, t) ELSE format('u.c%s', n) END
                    FROM unnest(output_types) WITH ORDINALITY u(t, n))
           || format('$%s', key_count + cardinality(output_types) + 2) || 'pg_catalog.now()'::text || 'u.error'::text;
  updates := (SELECT string_agg(format('%I = EXCLUDED.%I', c, c), ', ')
              FROM (SELECT value ->> 'name' AS c FROM jsonb_array_elements(binding.columns)
                    UNION ALL SELECT unnest(ARRAY['model_version', 'scored_at', 'error', 'arm'])) u);  -- 017: + arm
  RETURN jsonb_build_object(
    -- One index lookup per claimed key, whatever the table's size was when the statement was prepared: OFFSET 0
    -- keeps the lateral subquery from being flattened into a join the planner might hash over a scan of the table.
    'query', format('SELECT s.* FROM %s CROSS JOIN LATERAL (SELECT %s FROM %s s WHERE %s OFFSET 0) s',
                    claimed_keys,
                    array_to_string(ARRAY[mad.key_list(binding, 's.%I::text')] || ARRAY(SELECT 's.' || e FROM unnest(reads.expressions) e), ', '),
                    mad.qualified_name(binding.source), join_keys),
    'upsert', format('INSERT INTO mad_out.%I (%s) SELECT %s FROM unnest(%s) AS u(%s) ON CONFLICT (%s) DO UPDATE SET %s',
                     binding.name,
                     array_to_string(ARRAY[mad.key_list(binding, '%I')]
                                     || ARRAY(SELECT format('%I', c.value ->> 'name') FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n) ORDER BY n)
                                     || ARRAY['model_version', 'scored_at', 'error'], ', '),
                     array_to_string(selected, ', '),
                     array_to_string(parameters, ', '),
                     array_to_string(ARRAY[mad.key_list(binding, 'k%3$s')]
                                     || ARRAY(SELECT 'c' || n FROM generate_series(1, cardinality(output_types)) n) || 'error'::text, ', '),
                     mad.key_list(binding, '%I'),
                     updates),
    'delete', format('DELETE FROM mad_out.%I d WHERE d.ctid = ANY (ARRAY(SELECT s.mad_row FROM %s CROSS JOIN LATERAL (SELECT s.ctid AS mad_row, %s FROM mad_out.%I s WHERE %s OFFSET 0) s WHERE NOT EXISTS (SELECT FROM unnest(%s) AS f(%s) WHERE %s)))',
                     binding.name, claimed_keys,
                     mad.key_list(binding, 's.%I'),
                     binding.name, join_keys,
                     mad.key_list(binding, '$%3$s::text[]'),
                     mad.key_list(binding, 'k%3$s'),
                     mad.key_list(binding, 'f.k%3$s = s.%1$I::text', ' AND ')),
    'key_columns', to_jsonb(binding.key_columns),
    'key_types', to_jsonb(binding.key_types),
    'feature_columns', to_jsonb(reads.features),
    'feature_types', to_jsonb(reads.read_types),
    'slots', to_jsonb(reads.slots),
    'columns', binding.columns,
    'model', model_name,
    'version', model_version,
    'sha256', (SELECT v.sha256 FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version),
    'read_as', format('SET LOCAL ROLE %I', mad.reader_of(binding)));
END
$$;

-- The online doors ----------------------------------------------------------------------------------------------------

-- A request, and every online prediction in the log, records the arm that served it. The log's rows get it from
-- their request (a trigger, so the sidecars' COPY into the log stays as it is); HTTP rows have no request: champion.
ALTER TABLE mad.requests ADD COLUMN arm text NOT NULL DEFAULT 'champion' CHECK (arm IN ('champion', 'canary'));
ALTER TABLE mad.prediction_log ADD COLUMN arm text NOT NULL DEFAULT 'champion' CHECK (arm IN ('champion', 'canary', 'shadow'));
-- 008 granted mad_user the columns of mad.requests one by one; arm is as visible as version.
GRANT SELECT (arm) ON mad.requests TO mad_user;

CREATE FUNCTION mad.log_arm() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  IF NEW.request_id IS NOT NULL THEN
    NEW.arm := coalesce((SELECT r.arm FROM mad.requests r WHERE r.id = NEW.request_id), NEW.arm);
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER prediction_log_arm BEFORE INSERT ON mad.prediction_log FOR EACH ROW EXECUTE FUNCTION mad.log_arm();

-- Applies the deployment to a request just submitted (not committed yet, so no sidecar has claimed it): a request
-- through an alias with a canary gets the canary's version when its key's bucket is in it. Without a key the draw is
-- random at the canary's percent (documented: the same caller may get either version from one call to the next).
CREATE FUNCTION mad.route_request(request_id bigint, key text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  request mad.requests%ROWTYPE;
  deployed mad.deployments%ROWTYPE;
BEGIN
  -- Only the caller's own request, once, while it waits: a key is the caller's to choose anyway.
  SELECT * INTO request FROM mad.requests r
  WHERE r.id = route_request.request_id AND r.requested_by = mad.caller_role() AND r.status = 'pending' AND r.arm = 'champion';
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT * INTO deployed FROM mad.deployments d
  WHERE d.model = request.model AND d.alias = mad.reference_alias(request.reference) AND d.canary_version IS NOT NULL;
  IF FOUND AND coalesce(mad.bucket(deployed.seed, route_request.key), random()) < deployed.canary_percent / 100 THEN
    UPDATE mad.requests r SET version = deployed.canary_version, arm = 'canary' WHERE r.id = request.id;
  END IF;
END
$$;

-- 005's mad.predict_async and mad.predict, with one change each (marked 017): an optional key routes the request by
-- the deployment. (Dropped and created again: a new argument is a new signature.)
DROP FUNCTION mad.predict_async(text, jsonb);
CREATE FUNCTION mad.predict_async(model text, features jsonb, key text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  request_id bigint := mad.submit_request(model, features, 'async');
BEGIN
  PERFORM mad.route_request(request_id, key);  -- 017
  RETURN request_id;
END
$$;

DROP PROCEDURE mad.predict(text, jsonb, jsonb);
CREATE PROCEDURE mad.predict(model text, features jsonb, INOUT result jsonb DEFAULT NULL, key text DEFAULT NULL)
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
  PERFORM mad.route_request(request_id, key);  -- 017: the deployment's arm for the key
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

REVOKE ALL ON FUNCTION mad.predict_async(text, jsonb, text), mad.route_request(bigint, text), mad.log_arm() FROM PUBLIC;
REVOKE ALL ON PROCEDURE mad.predict(text, jsonb, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.predict_async(text, jsonb, text), mad.route_request(bigint, text) TO mad_admin, mad_user;
GRANT EXECUTE ON PROCEDURE mad.predict(text, jsonb, jsonb, text) TO mad_admin, mad_user;

REVOKE ALL ON FUNCTION mad.bucket(bigint, text), mad.key_text(text[]), mad.require_ready_version(text, integer, text),
  mad.lock_deployments(text, text), mad.require_alias(text, text), mad.require_same_columns(text, integer, integer, text), mad.record_deployment(text, text, text, text), mad.new_seed(), mad.reference_alias(text),
  mad.deploy(text, text, integer, text),
  mad.deploy_canary(text, text, integer, double precision, double precision[], interval, text),
  mad.deploy_shadow(text, text, integer, double precision, text), mad.promote(text, text, text),
  mad.abort_deployment(text, text, text), mad.finish_canary(text, text, boolean, text, text),
  mad.deployment_at(text, text, timestamp with time zone), mad.deployment_rows(text, text), mad.gate_error_rate(text, text),
  mad.advance_deployments(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.deploy(text, text, integer, text),
  mad.deploy_canary(text, text, integer, double precision, double precision[], interval, text),
  mad.deploy_shadow(text, text, integer, double precision, text), mad.promote(text, text, text),
  mad.abort_deployment(text, text, text) TO mad_admin;
-- The hash is published so SQL can recompute every assignment.
GRANT EXECUTE ON FUNCTION mad.bucket(bigint, text), mad.key_text(text[]) TO mad_admin, mad_user, mad_sidecar;
GRANT EXECUTE ON FUNCTION mad.deployment_at(text, text, timestamp with time zone) TO mad_admin, mad_user;
GRANT EXECUTE ON FUNCTION mad.deployment_rows(text, text) TO mad_admin;
GRANT EXECUTE ON FUNCTION mad.advance_deployments(text) TO mad_sidecar;

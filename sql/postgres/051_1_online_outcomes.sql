-- Outcomes of online requests (issue 17): a caller-supplied key links a request to its outcome.
--
-- CALL mad.predict(..., key => '42') and mad.predict_async(..., key => '42') already routed by the key (017, canary
-- stickiness); HTTP by parameters.key. The key is now kept with the request and with its row of mad.prediction_log,
-- beside the version, arm and answer the log already held. The model's online traffic is bound to outcomes under the
-- pseudo table name drift already uses, 'online:<model>' (026_2; a prediction table's name is an identifier, so it
-- never holds ':'):
--   SELECT mad.set_outcomes('online:churn', source => 'public.churn_events', key => '{customer_id}',
--                           label => 'churned', observed_at => 'observed_at');
--   SELECT * FROM mad.performance('online:churn');
-- mad.performance, mad.compare and the export read predictions only through mad.served_predictions and bindings only
-- through mad.outcomes; both now know 'online:<model>', so the metrics' own code is unchanged. What is served online:
-- the keyed, answered rows of the SQL doors (call, async) in mad.prediction_log, with their outputs less the
-- bookkeeping model and version keys (the same columns a prediction table holds). Not graded: rows without a key
-- (nothing links them; coverage counts only keyed rows, so docs say how to see the share), shadow rows (logged
-- just after the served answer, they would displace it in the point-in-time join; the shadow is judged by agreement,
-- 043_2), and HTTP rows (their answers are the model's raw OIP tensors, without the class names the metrics read;
-- their key is kept all the same).
--
-- Rights, as drift decided for online traffic (026_2): the requests of a model come from every caller of it, so no
-- table owner stands for them and only mad_admin may bind outcomes to 'online:<model>' or read its graded predictions
-- (which carry every caller's keys and answers). A mad_user sees the key of their own requests in mad.requests, as
-- every other column of them, and nobody else's.
--
-- Features for the export: a keyed row of a model whose online traffic has outcomes bound keeps its features in the
-- log (mad.prediction_log.features), from the moment of mad.set_outcomes, as a table's history starts then; other rows
-- keep none (the log stays as lean as it was). mad.online_key_features hands the latest features of each key to the export.

-- The key ---------------------------------------------------------------------------------------------------------------

ALTER TABLE mad.requests ADD COLUMN key text;
-- 008 granted mad_user the columns of mad.requests one by one (their own rows, by the policy): the key is theirs.
GRANT SELECT (key) ON mad.requests TO mad_user;

ALTER TABLE mad.prediction_log ADD COLUMN key text;
ALTER TABLE mad.prediction_log ADD COLUMN features jsonb;
-- What mad.served_predictions reads for 'online:<model>': keyed rows only, so unkeyed traffic costs the index nothing.
CREATE INDEX prediction_log_keyed ON mad.prediction_log (model, predicted_at) WHERE key IS NOT NULL;

-- mad.outcomes binds a prediction table or 'online:<model>'. Its foreign key to mad.prediction_tables (which deleted a
-- binding with its table) moves to a generated column that holds the name only for a table, and a second one ties an
-- online binding to its model the same way.
ALTER TABLE mad.outcomes DROP CONSTRAINT outcomes_prediction_table_fkey;
ALTER TABLE mad.outcomes
  ADD COLUMN bound_table text GENERATED ALWAYS AS (CASE WHEN prediction_table NOT LIKE 'online:%' THEN prediction_table END) STORED
    REFERENCES mad.prediction_tables (name) ON DELETE CASCADE,
  ADD COLUMN online_model text GENERATED ALWAYS AS (CASE WHEN prediction_table LIKE 'online:%' THEN substr(prediction_table, length('online:') + 1) END) STORED
    REFERENCES mad.models (name) ON DELETE CASCADE;

-- 025's mad.route_request, with one change (marked 051): the caller's key is kept with the request.
CREATE OR REPLACE FUNCTION mad.route_request(request_id bigint, key text) RETURNS void
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
  IF route_request.key IS NOT NULL THEN  -- 051
    UPDATE mad.requests r SET key = route_request.key WHERE r.id = request.id;
  END IF;
  SELECT * INTO deployed FROM mad.deployments d
  WHERE d.model = request.model AND d.alias = mad.reference_alias(request.reference);
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF deployed.canary_version IS NOT NULL AND coalesce(mad.bucket(deployed.seed, route_request.key), random()) < deployed.canary_percent / 100 THEN
    UPDATE mad.requests r SET version = deployed.canary_version, arm = 'canary' WHERE r.id = request.id;
  END IF;
  IF deployed.shadow_version IS NOT NULL AND coalesce(mad.bucket(deployed.seed, route_request.key), random()) < deployed.shadow_percent / 100 THEN
    UPDATE mad.requests r SET shadow_version = deployed.shadow_version WHERE r.id = request.id;
  END IF;
END
$$;

-- 025's mad.log_arm, with two changes (marked 051): a row of a request gets the request's key (the sidecars' COPY
-- of SQL doors' rows stays as it was; HTTP rows bring their own), and a keyed, answered, served row keeps its features
-- only while the model's online traffic has outcomes bound (HTTP rows bring them; SQL rows take the request's).
CREATE OR REPLACE FUNCTION mad.log_arm() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  request_arm text;
  request_key text;
BEGIN
  IF NEW.request_id IS NOT NULL THEN
    SELECT r.arm, r.key INTO request_arm, request_key FROM mad.requests r WHERE r.id = NEW.request_id;
    IF NEW.arm IS DISTINCT FROM 'shadow' THEN  -- 025
      NEW.arm := coalesce(request_arm, NEW.arm);
    END IF;
    NEW.key := coalesce(NEW.key, request_key);  -- 051
  END IF;
  -- 051: the features only where they will be read; an unkeyed row (most traffic) costs no more than before.
  IF NEW.key IS NOT NULL AND NEW.error IS NULL AND NEW.arm <> 'shadow'
     AND EXISTS (SELECT FROM mad.outcomes o WHERE o.prediction_table = 'online:' || NEW.model) THEN
    IF NEW.features IS NULL AND NEW.request_id IS NOT NULL THEN
      NEW.features := (SELECT r.features FROM mad.requests r WHERE r.id = NEW.request_id);
    END IF;
  ELSE
    NEW.features := NULL;
  END IF;
  RETURN NEW;
END
$$;

-- Binding -------------------------------------------------------------------------------------------------------------

-- Binds an outcome source to a model's online traffic: mad_admin only (see the header), who must be able to read the
-- source's key, label and observed_at columns now. One key column: it holds what callers pass as key (compared as
-- text, as mad.key_text spells a single value).
CREATE FUNCTION mad.set_online_outcomes(prediction_table text, source regclass, key text[], label text, observed_at text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  model_name text := substr(prediction_table, length('online:') + 1);
  column_name text;
  observed_type regtype;
BEGIN
  PERFORM mad.require_role('mad_admin', 'set the outcomes of the online requests of model ' || quote_literal(model_name));
  PERFORM mad.require_model(model_name);
  PERFORM mad.require_source_access(set_online_outcomes.source, 'set the outcomes of ' || quote_literal(prediction_table));
  IF key IS NULL OR cardinality(key) <> 1 THEN
    RAISE EXCEPTION 'The outcome key % has % column(s); the online requests of % are keyed on one value, the key callers pass.',
      coalesce(key::text, 'NULL'), coalesce(cardinality(key), 0), quote_literal(model_name)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('Name the source''s one column that holds the key given to CALL mad.predict(%L, ..., key => ...), e.g. key => ''{customer_id}''.', model_name);
  END IF;
  FOREACH column_name IN ARRAY key || ARRAY[label, observed_at] LOOP
    IF column_name IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = set_online_outcomes.source
                                          AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN
      RAISE EXCEPTION 'Outcome source % has no column %.', set_online_outcomes.source, coalesce(quote_ident(column_name), 'NULL')
        USING ERRCODE = 'undefined_column',
              HINT = 'Its columns: ' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
                                         WHERE a.attrelid = set_online_outcomes.source AND a.attnum > 0 AND NOT a.attisdropped);
    END IF;
    IF NOT pg_catalog.has_column_privilege(mad.caller_role(), set_online_outcomes.source, column_name, 'SELECT') THEN
      RAISE EXCEPTION 'permission denied to set the outcomes of %: role % may not SELECT column % of %',
        prediction_table, quote_ident(mad.caller_role()), quote_ident(column_name), set_online_outcomes.source USING ERRCODE = 'insufficient_privilege';
    END IF;
  END LOOP;
  SELECT a.atttypid::regtype INTO observed_type FROM pg_catalog.pg_attribute a WHERE a.attrelid = set_online_outcomes.source AND a.attname = observed_at;
  IF observed_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
    RAISE EXCEPTION 'Column % of % is of type %; observed_at must be a timestamptz, timestamp or date.', quote_ident(observed_at), set_online_outcomes.source, observed_type
      USING ERRCODE = 'datatype_mismatch';
  END IF;

  INSERT INTO mad.outcomes AS o (prediction_table, source, key_columns, label_column, observed_at_column)
  VALUES (set_online_outcomes.prediction_table, set_online_outcomes.source, key, label, observed_at)
  ON CONFLICT ON CONSTRAINT outcomes_pkey DO UPDATE SET source = EXCLUDED.source, key_columns = EXCLUDED.key_columns,
    label_column = EXCLUDED.label_column, observed_at_column = EXCLUDED.observed_at_column,
    created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at;
END
$$;

-- 022_1's mad.set_outcomes, with one change (marked 051): 'online:<model>' is bound by mad.set_online_outcomes.
CREATE OR REPLACE FUNCTION mad.set_outcomes(prediction_table text, source regclass, key text[], label text, observed_at text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  column_name text;
  observed_type regtype;
BEGIN
  IF set_outcomes.prediction_table LIKE 'online:%' THEN  -- 051
    PERFORM mad.set_online_outcomes(set_outcomes.prediction_table, set_outcomes.source, key, label, observed_at);
    RETURN;
  END IF;
  binding := mad.require_prediction_table(set_outcomes.prediction_table);
  PERFORM mad.require_binding_owner(binding, 'set the outcomes of ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(set_outcomes.source, 'set the outcomes of ' || quote_ident(binding.name));
  IF key IS NULL OR cardinality(key) <> cardinality(binding.key_columns) THEN
    RAISE EXCEPTION 'The outcome key % has % column(s); prediction table % is keyed on % (%).',
      coalesce(key::text, 'NULL'), coalesce(cardinality(key), 0), binding.name, cardinality(binding.key_columns), array_to_string(binding.key_columns, ', ')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the source''s columns that hold the same key, in the same order.';
  END IF;
  FOREACH column_name IN ARRAY key || ARRAY[label, observed_at] LOOP
    IF column_name IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = set_outcomes.source
                                          AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN
      RAISE EXCEPTION 'Outcome source % has no column %.', set_outcomes.source, coalesce(quote_ident(column_name), 'NULL')
        USING ERRCODE = 'undefined_column',
              HINT = 'Its columns: ' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
                                         WHERE a.attrelid = set_outcomes.source AND a.attnum > 0 AND NOT a.attisdropped);
    END IF;
    IF NOT pg_catalog.has_column_privilege(mad.caller_role(), set_outcomes.source, column_name, 'SELECT') THEN
      RAISE EXCEPTION 'permission denied to set the outcomes of %: role % may not SELECT column % of %',
        binding.name, quote_ident(mad.caller_role()), quote_ident(column_name), set_outcomes.source USING ERRCODE = 'insufficient_privilege';
    END IF;
  END LOOP;
  SELECT a.atttypid::regtype INTO observed_type FROM pg_catalog.pg_attribute a WHERE a.attrelid = set_outcomes.source AND a.attname = observed_at;
  IF observed_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
    RAISE EXCEPTION 'Column % of % is of type %; observed_at must be a timestamptz, timestamp or date.', quote_ident(observed_at), set_outcomes.source, observed_type
      USING ERRCODE = 'datatype_mismatch';
  END IF;

  INSERT INTO mad.outcomes AS o (prediction_table, source, key_columns, label_column, observed_at_column)
  VALUES (binding.name, set_outcomes.source, key, label, observed_at)
  ON CONFLICT ON CONSTRAINT outcomes_pkey DO UPDATE SET source = EXCLUDED.source, key_columns = EXCLUDED.key_columns,
    label_column = EXCLUDED.label_column, observed_at_column = EXCLUDED.observed_at_column,
    created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at;

  EXECUTE format('CREATE TABLE IF NOT EXISTS mad_history.%I (key text NOT NULL, version int NOT NULL, arm text NOT NULL, '
                 'outputs jsonb NOT NULL, scored_at timestamptz NOT NULL, PRIMARY KEY (key, scored_at))', binding.name);
  EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON mad_history.%I (scored_at)', left(binding.name, 50) || '_scored_at', binding.name);
  IF pg_catalog.to_regclass(format('mad_out.%I', binding.name)) IS NOT NULL THEN
    EXECUTE mad.history_insert(binding, format('mad_out.%I', binding.name));
    PERFORM mad.attach_history(binding);
  END IF;
END
$$;

-- Reading --------------------------------------------------------------------------------------------------------------

-- The graded online predictions of a model (see the header for which rows), to mad_admin; as mad.served_predictions
-- answers for a table. Reads only mad's own tables.
CREATE FUNCTION mad.online_served_predictions(table_name text, as_of timestamptz DEFAULT NULL)
RETURNS TABLE (key text, version int, arm text, outputs jsonb, scored_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  model_name text := substr(table_name, length('online:') + 1);
BEGIN
  PERFORM mad.require_role('mad_admin', 'read the online predictions of model ' || quote_literal(model_name));
  PERFORM mad.require_model(model_name);
  IF NOT EXISTS (SELECT FROM mad.outcomes o WHERE o.prediction_table = table_name) THEN
    RAISE EXCEPTION 'The online requests of model % have no outcomes bound.', quote_literal(model_name)
      USING ERRCODE = 'no_data_found',
            HINT = format('Bind them: SELECT mad.set_outcomes(%L, source => ..., key => ''{<the column holding the callers'' key>}'', label => ..., observed_at => ...);', table_name);
  END IF;
  RETURN QUERY
    SELECT l.key, l.version, l.arm, l.outputs - 'model' - 'version', l.predicted_at
    FROM mad.prediction_log l
    WHERE l.model = model_name AND l.key IS NOT NULL AND l.error IS NULL AND l.outputs IS NOT NULL
      AND l.arm <> 'shadow' AND l.door <> 'http' AND (as_of IS NULL OR l.predicted_at <= as_of);
END
$$;

-- The latest features each key was sent with (kept while outcomes are bound; see the header), for the export's join
-- of labels to features. mad_admin only, as the predictions.
CREATE FUNCTION mad.online_key_features(model text)
RETURNS TABLE (key text, features jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_admin', 'read the online features of model ' || quote_literal(online_key_features.model));
  PERFORM mad.require_model(online_key_features.model);
  RETURN QUERY
    SELECT DISTINCT ON (l.key) l.key, l.features
    FROM mad.prediction_log l
    WHERE l.model = online_key_features.model AND l.key IS NOT NULL AND l.features IS NOT NULL
    ORDER BY l.key, l.predicted_at DESC;
END
$$;

-- 042_2's mad.served_predictions, with one change (marked 051): 'online:<model>' is answered by
-- mad.online_served_predictions. (binding and out_table are now set in the body: their defaults would refuse the name.)
CREATE OR REPLACE FUNCTION mad.served_predictions(table_name text, as_of timestamptz DEFAULT NULL)
RETURNS TABLE (key text, version int, arm text, outputs jsonb, scored_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  out_table regclass;
  one_device text := nullif(pg_catalog.current_setting('mad.device', true), '');
BEGIN
  IF table_name LIKE 'online:%' THEN  -- 051
    RETURN QUERY SELECT * FROM mad.online_served_predictions(table_name, as_of);
    RETURN;
  END IF;
  binding := mad.require_prediction_table(table_name);
  out_table := pg_catalog.to_regclass(format('mad_out.%I', binding.name));
  IF out_table IS NULL OR NOT (pg_catalog.has_table_privilege(mad.caller_role(), out_table, 'SELECT')
                               OR pg_catalog.pg_has_role(mad.caller_role(), 'mad_sidecar', 'MEMBER')) THEN
    RAISE EXCEPTION 'permission denied to read the predictions of %: role % may not SELECT from mad_out.%I', quote_literal(binding.name), quote_ident(mad.caller_role()), binding.name
      USING ERRCODE = 'insufficient_privilege', HINT = format('Its owner can run: GRANT SELECT ON mad_out.%I TO %I;', binding.name, mad.caller_role());
  END IF;
  IF NOT EXISTS (SELECT FROM mad.outcomes o WHERE o.prediction_table = binding.name) THEN
    RAISE EXCEPTION 'Prediction table % has no outcomes bound.', quote_literal(binding.name)
      USING ERRCODE = 'no_data_found',
            HINT = format('Bind them: SELECT mad.set_outcomes(%L, source => ..., key => %L, label => ..., observed_at => ...);', binding.name, binding.key_columns);
  END IF;
  IF one_device IS NULL THEN
    RETURN QUERY EXECUTE format('SELECT h.key, h.version, h.arm, h.outputs, h.scored_at FROM mad_history.%I h WHERE $1 IS NULL OR h.scored_at <= $1', binding.name)
      USING as_of;
  END IF;
  RETURN QUERY
    SELECT e.device || U&'\001E' || e.key, e.version, e.arm, e.outputs, e.scored_at FROM mad.edge_predictions e
    WHERE e.prediction_table = binding.name AND (one_device IS NULL OR e.device = one_device) AND (as_of IS NULL OR e.scored_at <= as_of);
END
$$;

REVOKE ALL ON FUNCTION mad.set_online_outcomes(text, regclass, text[], text, text), mad.online_served_predictions(text, timestamptz),
  mad.online_key_features(text) FROM PUBLIC;
-- mad.set_outcomes and mad.served_predictions call them as mad's owner; mad.online_key_features is called by the export,
-- on the caller's connection, and refuses all but mad_admin itself.
GRANT EXECUTE ON FUNCTION mad.online_key_features(text) TO mad_admin;

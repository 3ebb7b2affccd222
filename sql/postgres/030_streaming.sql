-- Streaming: mad.watch(name) puts statement-level AFTER INSERT/UPDATE/DELETE triggers with transition tables on a
-- prediction table's source. They record the keys of changed rows in mad.outbox in the writer's own transaction (no
-- scoring there). Sidecars drain the outbox in batches (FOR UPDATE SKIP LOCKED) in a transaction that also writes the
-- predictions: a sidecar that dies mid-drain rolls back and the keys are drained again. A drained key is scored with
-- the row's CURRENT values, or its prediction deleted when the row is gone, so the op recorded is informational only.
--
-- Wake-up without a NOTIFY per writer transaction: a transaction that calls pg_notify serialises commits (LIMITS.md).
-- The trigger notifies 'mad_rows' only while mad.stream_wake says the sidecars are idle (a read of one row of an
-- unlogged table). A sidecar clears the flag when it wakes, polls the outbox every millisecond while it finds work
-- (and for a short while after), and sets the flag again, then drains once more, before it sleeps on LISTEN. Under
-- sustained writes the flag stays clear and writers never NOTIFY; an idle system still wakes within milliseconds.

CREATE TABLE mad.outbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  prediction_table text NOT NULL,
  key text[] NOT NULL,
  op text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
  enqueued_at timestamptz NOT NULL DEFAULT now()
);

-- Draining a table's keys in order.
CREATE INDEX outbox_drain ON mad.outbox (prediction_table, id);

GRANT SELECT ON mad.outbox TO mad_admin, mad_user, mad_sidecar;

CREATE UNLOGGED TABLE mad.stream_wake (
  id int PRIMARY KEY CHECK (id = 1),
  idle boolean NOT NULL
);
INSERT INTO mad.stream_wake VALUES (1, true);
GRANT SELECT, UPDATE ON mad.stream_wake TO mad_sidecar;

ALTER TABLE mad.prediction_tables ADD COLUMN watched boolean NOT NULL DEFAULT false;

INSERT INTO mad.settings (name, value, description) VALUES
  ('stream_batch_rows', '1000', 'The most outbox rows one streaming batch drains.');

-- The trigger: TG_ARGV[0] is the prediction table, TG_ARGV[1] the key as a text[] expression over the transition
-- table's columns (quoted by mad.watch).
CREATE FUNCTION mad.stream_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    EXECUTE format('INSERT INTO mad.outbox (prediction_table, key, op) SELECT %L, %s, ''insert'' FROM new_rows', TG_ARGV[0], TG_ARGV[1]);
  ELSIF TG_OP = 'UPDATE' THEN
    -- The old keys too: a row whose key changed loses its old prediction.
    EXECUTE format('INSERT INTO mad.outbox (prediction_table, key, op) SELECT %L, k, ''update'' FROM (SELECT %s AS k FROM new_rows UNION SELECT %s FROM old_rows) u',
                   TG_ARGV[0], TG_ARGV[1], TG_ARGV[1]);
  ELSE
    EXECUTE format('INSERT INTO mad.outbox (prediction_table, key, op) SELECT %L, %s, ''delete'' FROM old_rows', TG_ARGV[0], TG_ARGV[1]);
  END IF;
  IF (SELECT w.idle FROM mad.stream_wake w WHERE w.id = 1) THEN
    PERFORM pg_notify('mad_rows', TG_ARGV[0]);
  END IF;
  RETURN NULL;
END
$$;

-- Starts streaming a prediction table: the caller must be allowed to read its source, as to create it.
CREATE FUNCTION mad.watch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  key_expression text;
BEGIN
  binding := mad.require_prediction_table(watch.name);
  PERFORM mad.require_source_access(binding.source, 'watch a prediction table');
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'Only a table can be watched; % is not one.', binding.source USING ERRCODE = 'wrong_object_type';
  END IF;
  IF binding.watched THEN
    RETURN;
  END IF;
  key_expression := format('ARRAY[%s]', (SELECT string_agg(format('%I::text', k), ', ' ORDER BY n) FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n)));
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mad.stream_capture(%L, %L)',
                 'mad_watch_' || binding.name || '_i', binding.source, binding.name, key_expression);
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mad.stream_capture(%L, %L)',
                 'mad_watch_' || binding.name || '_u', binding.source, binding.name, key_expression);
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mad.stream_capture(%L, %L)',
                 'mad_watch_' || binding.name || '_d', binding.source, binding.name, key_expression);
  UPDATE mad.prediction_tables p SET watched = true WHERE p.name = binding.name;
  PERFORM pg_notify('mad_rows', binding.name);
END
$$;

-- Stops streaming: removes the triggers and the keys still waiting.
CREATE FUNCTION mad.unwatch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  suffix text;
BEGIN
  binding := mad.require_prediction_table(unwatch.name);
  PERFORM mad.require_source_access(binding.source, 'unwatch a prediction table');
  FOREACH suffix IN ARRAY ARRAY['_i', '_u', '_d'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'mad_watch_' || binding.name || suffix, binding.source);
  END LOOP;
  UPDATE mad.prediction_tables p SET watched = false WHERE p.name = binding.name;
  DELETE FROM mad.outbox o WHERE o.prediction_table = binding.name;
END
$$;

-- Claims up to batch_rows keys of a table's outbox (deleting them in the caller's transaction), and takes a
-- transaction-level advisory lock per distinct key, in one order, so two sidecars never score one key at once: the
-- later one waits and then reads the row's latest values. Returns the distinct keys as a JSON array of text arrays.
CREATE FUNCTION mad.stream_claim(table_name text, batch_rows int) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  keys jsonb;
  lock_key bigint;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  WITH claimed AS (
    DELETE FROM mad.outbox o WHERE o.id IN (
      SELECT i.id FROM mad.outbox i WHERE i.prediction_table = table_name ORDER BY i.id LIMIT batch_rows FOR UPDATE SKIP LOCKED)
    RETURNING o.key)
  SELECT coalesce(jsonb_agg(to_jsonb(d.key)), '[]') INTO keys FROM (SELECT DISTINCT c.key FROM claimed c) d;
  FOR lock_key IN
    SELECT DISTINCT hashtextextended(table_name || ':' || k.value::text, 0) FROM jsonb_array_elements(keys) k ORDER BY 1
  LOOP
    PERFORM pg_advisory_xact_lock(lock_key);
  END LOOP;
  RETURN keys;
END
$$;

-- How to read the current values of the given keys: the same plan as mad.task_plan, with the keys as a condition
-- and the version the model reference means now.
CREATE FUNCTION mad.stream_plan(table_name text, keys jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  features text[];
  selected text[] := '{}';
  read_types text[] := '{}';
  feature text;
  hit record;
  key_list text;
  typed_keys text;
  model_name text;
  model_version int;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  binding := mad.require_prediction_table(table_name);
  features := ARRAY(SELECT DISTINCT ON (c) c FROM unnest(binding.feature_columns) WITH ORDINALITY u(c, n) ORDER BY c, n);
  features := ARRAY(SELECT c FROM unnest(features) c ORDER BY array_position(binding.feature_columns, c));
  FOREACH feature IN ARRAY features LOOP
    SELECT * INTO hit FROM mad.find_column(binding.source, feature);
    IF hit.type IN ('real'::regtype, 'double precision'::regtype, 'smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'boolean'::regtype) THEN
      selected := selected || format('%I', feature);
      read_types := read_types || hit.type::text;
    ELSIF hit.type = 'numeric'::regtype THEN
      selected := selected || format('%I::double precision', feature);
      read_types := read_types || 'double precision'::text;
    ELSE
      selected := selected || format('%I::text', feature);
      read_types := read_types || 'text'::text;
    END IF;
  END LOOP;
  key_list := (SELECT string_agg(format('%I', k), ', ' ORDER BY n) FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n));
  typed_keys := (SELECT string_agg(format('(k.value ->> %s)::%s', n - 1, binding.key_types[n]), ', ' ORDER BY n)
                 FROM unnest(binding.key_columns) WITH ORDINALITY u(c, n));
  model_name := split_part(binding.model, '@', 1);
  model_version := mad.resolve_reference(binding.model);
  PERFORM mad.ready_signature(model_name, model_version);
  RETURN jsonb_build_object(
    'query', format('SELECT %s FROM %s WHERE ROW(%s) IN (SELECT %s FROM jsonb_array_elements(%L::jsonb) k)',
                    array_to_string(ARRAY[key_list] || selected, ', '), binding.source, key_list, typed_keys, keys),
    'build_table', 'pg_temp.mad_stream_rows',
    'key_columns', to_jsonb(binding.key_columns),
    'key_types', to_jsonb(binding.key_types),
    'feature_columns', to_jsonb(features),
    'feature_types', to_jsonb(read_types),
    'slots', (SELECT jsonb_agg(array_position(features, c) - 1 ORDER BY n) FROM unnest(binding.feature_columns) WITH ORDINALITY u(c, n)),
    'columns', binding.columns,
    'model', model_name,
    'version', model_version,
    'sha256', (SELECT v.sha256 FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version));
END
$$;

-- Moves the scored rows of pg_temp.mad_stream_rows into mad_out.<name> (upsert) and deletes the predictions of the
-- given keys that have no scored row (their source rows are gone). Call it in the transaction of mad.stream_claim.
CREATE FUNCTION mad.stream_apply(table_name text, keys jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  key_list text;
  typed_keys text;
  updates text;
  deleted bigint;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  binding := mad.require_prediction_table(table_name);
  key_list := (SELECT string_agg(format('%I', k), ', ' ORDER BY n) FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n));
  typed_keys := (SELECT string_agg(format('(k.value ->> %s)::%s', n - 1, binding.key_types[n]), ', ' ORDER BY n)
                 FROM unnest(binding.key_columns) WITH ORDINALITY u(c, n));
  updates := (SELECT string_agg(format('%I = EXCLUDED.%I', c, c), ', ')
              FROM (SELECT value ->> 'name' AS c FROM jsonb_array_elements(binding.columns)
                    UNION ALL SELECT unnest(ARRAY['model_version', 'scored_at', 'error'])) u);
  EXECUTE format('INSERT INTO mad_out.%I SELECT * FROM pg_temp.mad_stream_rows ON CONFLICT (%s) DO UPDATE SET %s',
                 binding.name, key_list, updates);
  EXECUTE format('DELETE FROM mad_out.%I o WHERE ROW(%s) IN (SELECT %s FROM jsonb_array_elements($1) k) AND ROW(%s) NOT IN (SELECT %s FROM pg_temp.mad_stream_rows)',
                 binding.name, key_list, typed_keys, key_list, key_list) USING keys;
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END
$$;

-- Live lag of a watched table: keys waiting and the age of the oldest.
CREATE FUNCTION mad.stream_lag(table_name text) RETURNS TABLE (waiting bigint, oldest_age interval)
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT count(*), now() - min(o.enqueued_at) FROM mad.outbox o WHERE o.prediction_table = table_name;
$$;

REVOKE ALL ON FUNCTION mad.stream_capture(), mad.watch(text), mad.unwatch(text), mad.stream_claim(text, int),
  mad.stream_plan(text, jsonb), mad.stream_apply(text, jsonb), mad.stream_lag(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.watch(text), mad.unwatch(text), mad.stream_lag(text) TO mad_admin, mad_user, mad_sidecar;
GRANT EXECUTE ON FUNCTION mad.stream_claim(text, int), mad.stream_plan(text, jsonb), mad.stream_apply(text, jsonb) TO mad_sidecar;

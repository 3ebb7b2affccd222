-- Follow-ups of issue 12 (docs/SECURITY.md): a stream error only to those who may read it, names that fit whatever the
-- prediction table's name, a bounded lock wait in watch, tensor-only models refused at binding, and no raw outbox
-- for mad_admin.
--
-- * mad.stream_lag (granted to mad_admin and mad_user) answered every table's stream_error to any caller, around
--   008's column revoke of prediction_tables.stream_error: an error may quote the source's values. It now answers the
--   error to the binding's owner (or a member of it) and mad_admin only; anyone else gets the row (keys waiting, their
--   age, rows/s) with a fixed text instead of the error, saying that the last batch failed and who can see why, so
--   `mad tables status` keeps listing every watched table for every caller and stays exact for owners.
-- * mad.watch named a table's triggers 'mad_watch_' || name || '_' || operation, which PostgreSQL cut to 63 bytes:
--   for a name over 51 characters the four names were one and the watch failed with 42710. The triggers are now
--   named from a hash of the table's name (mad.watch_trigger, as mad.capture_function names their functions);
--   unwatch drops both the new names and those a table watched before 012 still has.
-- * mad.watch waited on the stream_notify advisory lock without a limit (any login may hold it): it is bounded as
--   010's mad.stream_set_notify is (10 s when the session sets no lock_timeout, and mad.raise_lock_timeout's message
--   naming the holders).
-- * mad.create_prediction_table's "already exists" message printed mad.refresh(<name>L) (a %L in a RAISE format);
--   and it bound models whose signature carries tensor_only (rows cannot feed them yet), whose every refresh task
--   then failed. It now refuses them with that reason (22M01).
-- * The refresh swap renamed the new table's key constraint to left(name, 58) || '_pkey': two names sharing their
--   first 58 characters collided (42P07, the second table could never be refreshed). The key constraint is now
--   named from a hash of the full name, with a character no prediction table's name may hold (mad.key_constraint),
--   at creation and at every swap.
-- * mad.create_capture granted mad_admin SELECT on the raw mad_outbox.<name> tables: an admin saw the keys of every
--   watched source whatever its rights on it. Admins read the gated mad.outbox view (008) instead; the grants made so
--   far are revoked.

-- The name of a watched table's trigger for operation i, u, d, t (the capture triggers) or k (the key-type guard):
-- from a hash of the table's name, so any name fits in 63 bytes; the '$' keeps it apart from the names before 012
-- ('mad_watch_<name>_<operation>'), which a prediction table's name (letters, digits, '_') could otherwise match.
CREATE FUNCTION mad.watch_trigger(table_name text, operation text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT 'mad_watch_' || pg_catalog.substr(pg_catalog.md5(table_name), 1, 16) || '$' || operation;
$$;

-- The name of mad_out.<name>'s key constraint (and its index, a relation of schema mad_out): from a hash of the whole
-- name, with a '$' that no prediction table's name holds, so it can match neither another table's key nor a table.
CREATE FUNCTION mad.key_constraint(table_name text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT 'pkey$' || pg_catalog.md5(table_name);
$$;

-- Live lag of a watched table (as in 010), with the error of its last failed batch only for the binding's owner (or
-- a member of it) and mad_admin: the error may quote values of the source. Same signature, result and grants.
CREATE OR REPLACE FUNCTION mad.stream_lag(table_name text)
RETURNS TABLE (waiting bigint, oldest_age interval, rows_per_second double precision, error text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  SELECT o.waiting, o.oldest_age,
         (SELECT coalesce(sum(s.rows_per_second), 0) FROM mad.stream_stats s
          WHERE s.prediction_table = p.name AND s.reported_at > now() - interval '10 seconds'),
         CASE WHEN p.stream_error IS NULL THEN NULL
              WHEN mad.caller_role() = p.owner
                   OR pg_catalog.pg_has_role(mad.caller_role(), 'mad_admin', 'MEMBER')
                   OR (EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = p.owner)
                       AND pg_catalog.pg_has_role(mad.caller_role(), p.owner, 'MEMBER')) THEN p.stream_error
              ELSE pg_catalog.format('The last streaming batch failed; only the table''s owner (role %s) and mad_admin see why.', quote_ident(p.owner))
         END
  FROM mad.require_prediction_table(table_name) p, mad.stream_outbox_lag(p.name) o;
$$;

-- As in 007, with the "already exists" hint fixed, tensor-only models refused, and the key constraint named by
-- mad.key_constraint.
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
    IF lower(column_name) = ANY (SELECT lower(k) FROM unnest(key_names) k) OR column_name IN ('model_version', 'scored_at', 'error') THEN
      column_name := 'predicted_' || column_name;
    END IF;
    output_column := jsonb_set(output_column, '{name}', to_jsonb(column_name));
    output_columns := output_columns || output_column;
    definitions := definitions || format('%I %s', column_name, mad.output_sql_type(output_column ->> 'type'));
  END LOOP;
  definitions := definitions || ARRAY['model_version int NOT NULL', 'scored_at timestamptz NOT NULL', 'error text'];

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

-- As in 007, with the key constraint renamed to mad.key_constraint(name) at the swap.
CREATE OR REPLACE FUNCTION mad.complete_task(task_id bigint, lease_token uuid, rows_done bigint, rows_failed bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  job mad.jobs;
  binding mad.prediction_tables;
  state text := 'running';
  old_acl aclitem[];
  wait_ms bigint := greatest(1, mad.setting_int('swap_lock_timeout_ms', 5000));
  previous_timeout text := pg_catalog.current_setting('lock_timeout');
  holders text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  SELECT j.* INTO job FROM mad.jobs j JOIN mad.tasks t ON t.job_id = j.id WHERE t.id = complete_task.task_id FOR UPDATE OF j;
  UPDATE mad.tasks t SET state = 'done', rows_done = complete_task.rows_done, rows_failed = complete_task.rows_failed,
    lease_token = NULL, lease_until = NULL, finished_at = clock_timestamp(), error = NULL
  WHERE t.id = complete_task.task_id AND t.lease_token = complete_task.lease_token AND t.state = 'running' AND job.state = 'running';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Task % of job % is no longer held by this lease (it expired and was claimed again, or the job ended): its rows are rolled back.',
      complete_task.task_id, job.id USING ERRCODE = '55M02';
  END IF;

  UPDATE mad.jobs j SET tasks_done = j.tasks_done + 1, rows_done = j.rows_done + complete_task.rows_done,
    rows_failed = j.rows_failed + complete_task.rows_failed
  WHERE j.id = job.id RETURNING * INTO job;
  IF job.tasks_done < job.tasks_total THEN
    PERFORM pg_notify('mad_jobs', json_build_object('event', 'progress', 'job', job.id, 'rows_done', job.rows_done)::text);
    RETURN state;
  END IF;

  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = job.prediction_table FOR UPDATE;
  BEGIN
    PERFORM pg_catalog.set_config('lock_timeout', wait_ms::text, true);
    SELECT c.relacl INTO old_acl FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(format('mad_out.%I', binding.name));
    EXECUTE format('DROP TABLE IF EXISTS mad_out.%I', binding.name);
    EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', job.build_table, 'job_' || job.id || '_pkey', mad.key_constraint(binding.name));
    EXECUTE format('ALTER TABLE %s RENAME TO %I', job.build_table, binding.name);
    EXECUTE format('ALTER TABLE mad_build.%I SET SCHEMA mad_out', binding.name);
    PERFORM pg_catalog.set_config('lock_timeout', previous_timeout, true);
    EXECUTE format('REVOKE INSERT ON mad_out.%I FROM mad_sidecar', binding.name);
    PERFORM mad.grant_predictions(binding);
    PERFORM mad.carry_grants(binding, job.id, old_acl);
    UPDATE mad.prediction_tables p SET refreshed_at = now(), refreshed_version = job.version, rows_scored = job.rows_done,
      rows_failed = job.rows_failed, last_job = job.id
    WHERE p.name = binding.name;
    state := 'done';
    UPDATE mad.jobs j SET state = 'done', finished_at = clock_timestamp() WHERE j.id = job.id;
  EXCEPTION
    WHEN dependent_objects_still_exist THEN
      state := 'failed';
      UPDATE mad.jobs j SET state = 'failed', finished_at = clock_timestamp(),
        error = format('mad_out.%I cannot be replaced: other objects depend on it (%s). Drop them, or read the table through a function.', binding.name, SQLERRM)
      WHERE j.id = job.id;
    WHEN lock_not_available THEN
      PERFORM pg_catalog.set_config('lock_timeout', previous_timeout, true);
      SELECT string_agg(DISTINCT l.pid::text, ', ') INTO holders FROM pg_catalog.pg_locks l
      WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()
        AND l.relation = pg_catalog.to_regclass(format('mad_out.%I', binding.name));
      state := 'failed';
      UPDATE mad.jobs j SET state = 'failed', finished_at = clock_timestamp(),
        error = format('mad_out.%I could not be swapped in: other sessions (pid %s) held a lock on it for more than swap_lock_timeout_ms (%s ms). '
                       'End their open transactions (see pg_stat_activity, or pg_terminate_backend), or raise the setting, and refresh again: SELECT mad.refresh(%L).',
                       binding.name, coalesce(holders, 'gone by now'), wait_ms, binding.name)
      WHERE j.id = job.id;
  END;
  PERFORM pg_notify('mad_jobs', json_build_object('event', state, 'job', job.id, 'table', binding.name)::text);
  RETURN state;
END
$$;

-- As in 007, with the triggers named by mad.watch_trigger and the stream_notify wait bounded.
CREATE OR REPLACE FUNCTION mad.watch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  operation text;
  previous_timeout text := pg_catalog.current_setting('lock_timeout');
BEGIN
  binding := mad.require_prediction_table(watch.name);
  PERFORM mad.require_binding_owner(binding, 'watch ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'watch ' || quote_ident(binding.name));
  PERFORM mad.require_trigger_privilege(binding.source, 'watch ' || quote_ident(binding.name));
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'Only a table can be watched; % is not one.', binding.source USING ERRCODE = 'wrong_object_type';
  END IF;
  PERFORM mad.require_builtin_keys(binding.source, binding.key_columns, binding.key_types);
  IF binding.watched THEN
    RETURN;
  END IF;
  -- Bounded as in mad.stream_set_notify (010): any login may hold this key. Where the session sets no lock_timeout
  -- the wait is capped at 10 s, and only for this lock: the caller's own setting is back for the rest.
  IF previous_timeout = '0' THEN
    PERFORM pg_catalog.set_config('lock_timeout', '10s', true);
  END IF;
  BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(mad.lock_key('stream_notify'), 0);
  EXCEPTION WHEN lock_not_available THEN
    PERFORM mad.raise_lock_timeout('stream_notify', 0, 'watch ' || quote_ident(binding.name));
  END;
  PERFORM pg_catalog.set_config('lock_timeout', previous_timeout, true);
  PERFORM mad.create_capture(binding, (SELECT w.notify FROM mad.stream_wake w WHERE w.id = 1));
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                   mad.watch_trigger(binding.name, operation),
                   CASE operation WHEN 'i' THEN 'INSERT' WHEN 'u' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'TRUNCATE' END,
                   mad.qualified_name(binding.source),
                   CASE operation WHEN 'i' THEN 'REFERENCING NEW TABLE AS new_rows' WHEN 'u' THEN 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                  WHEN 'd' THEN 'REFERENCING OLD TABLE AS old_rows' ELSE '' END,
                   mad.capture_function(binding.name, operation));
  END LOOP;
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %s ON %s FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION mad.key_type_guard()',
                 mad.watch_trigger(binding.name, 'k'), mad.key_list(binding, '%I'), mad.qualified_name(binding.source));
  PERFORM mad.grant_stream_writes(binding.name);
  -- Keys left by an unwatch that skipped a batch in flight: a refresh, not the stream, brings such rows up to date.
  PERFORM mad.clear_outbox(binding.name);
  UPDATE mad.prediction_tables p SET watched = true, stream_error = NULL, stream_error_at = NULL WHERE p.name = binding.name;
  PERFORM pg_notify('mad_rows', 'plan:' || binding.name); -- 'plan:': sidecars read their plans again
END
$$;

-- As in 007, dropping the triggers by their names since 012 and by those of a table watched before.
CREATE OR REPLACE FUNCTION mad.unwatch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  operation text;
BEGIN
  binding := mad.require_prediction_table(unwatch.name);
  PERFORM mad.require_binding_owner(binding, 'unwatch ' || quote_ident(binding.name));
  PERFORM mad.require_source_access(binding.source, 'unwatch ' || quote_ident(binding.name));
  -- The triggers' names: from a hash of the table's name since 012, 'mad_watch_<name>_<operation>' when watched before.
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't', 'k'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', mad.watch_trigger(binding.name, operation), mad.qualified_name(binding.source));
    IF octet_length('mad_watch_' || binding.name || '_' || operation) <= 63 THEN
      EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'mad_watch_' || binding.name || '_' || operation, mad.qualified_name(binding.source));
    END IF;
    IF operation <> 'k' THEN
      EXECUTE format('DROP FUNCTION IF EXISTS %s()', mad.capture_function(binding.name, operation));
    END IF;
  END LOOP;
  EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON mad_out.%I FROM mad_sidecar', binding.name);
  UPDATE mad.prediction_tables p SET watched = false, stream_error = NULL, stream_error_at = NULL WHERE p.name = binding.name;
  -- Keys a sidecar's batch holds are skipped, not waited for: that batch waits for the source this holds (a deadlock).
  PERFORM mad.clear_outbox(binding.name);
  DELETE FROM mad.stream_stats s WHERE s.prediction_table = binding.name;
  PERFORM pg_notify('mad_rows', 'plan:' || binding.name);
END
$$;

-- As in 006, without mad_admin's SELECT on the outbox table (it reads the gated mad.outbox view).
CREATE OR REPLACE FUNCTION mad.create_capture(binding mad.prediction_tables, notify boolean) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  outbox text := format('mad_outbox.%I', binding.name);
  key_list text := mad.key_list(binding, '%I');
  row_keys text := mad.key_list(binding, 'n.%I');
  wake text := CASE WHEN notify THEN format('PERFORM pg_catalog.pg_notify(%L, %L);', 'mad_rows', binding.name) ELSE '' END;
  body text;
  operation text;
BEGIN
  IF binding.key_columns && ARRAY['mad_id', 'mad_enqueued_at'] THEN
    RAISE EXCEPTION 'A key column of % is named mad_id or mad_enqueued_at, which the outbox uses itself.', binding.source
      USING ERRCODE = 'duplicate_column', HINT = 'Create the prediction table on a view that renames the column, and watch that.';
  END IF;
  IF pg_catalog.to_regclass(outbox) IS NULL THEN
    EXECUTE format('CREATE TABLE %s (mad_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, %s, mad_enqueued_at timestamptz NOT NULL DEFAULT now())',
                   outbox, mad.key_list(binding, '%1$I %2$s NOT NULL'));
    EXECUTE format('GRANT SELECT, UPDATE, DELETE ON %s TO mad_sidecar', outbox);
    PERFORM mad.rebuild_outbox_view();
  END IF;
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't'] LOOP
    body := CASE operation
      WHEN 'i' THEN format('INSERT INTO %s (%s) SELECT %s FROM new_rows n; %s', outbox, key_list, row_keys, wake)
      WHEN 'u' THEN format('INSERT INTO %s (%s) SELECT %s FROM new_rows n UNION SELECT %s FROM old_rows n; %s', outbox, key_list, row_keys, row_keys, wake)
      WHEN 'd' THEN format('INSERT INTO %s (%s) SELECT %s FROM old_rows n; %s', outbox, key_list, row_keys, wake)
      -- TRUNCATE names no rows: every prediction goes, in the writer's transaction, as the rows do.
      ELSE format('PERFORM mad.clear_outbox(%L); TRUNCATE mad_out.%I;', binding.name, binding.name)
    END;
    -- SECURITY DEFINER without SET search_path (a SET costs every writer a GUC save and restore): the body names
    -- no operator unqualified and every relation and function with its schema; new_rows/old_rows are the trigger's.
    EXECUTE format('CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS %L',
                   mad.capture_function(binding.name, operation), format('BEGIN %s RETURN NULL; END', body));
    EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', mad.capture_function(binding.name, operation));
  END LOOP;
END
$$;

REVOKE SELECT ON ALL TABLES IN SCHEMA mad_outbox FROM mad_admin;

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.watch_trigger(text, text), mad.key_constraint(text) FROM PUBLIC;

-- Streaming: mad.watch(name) keeps a prediction table up to date as its source changes.
--
-- Capture. Each watched table gets an outbox of its own, mad_outbox.<name> (mad_id, the source's key columns with
-- their own types, mad_enqueued_at), and four statement-level AFTER triggers on its source (INSERT, UPDATE and DELETE
-- with transition tables, and TRUNCATE) whose functions are generated per table with static statements: one
-- INSERT ... SELECT of the changed rows' keys into the outbox in the writer's own transaction (an UPDATE also queues
-- the old keys, whose prediction goes if the key changed). No scoring, no lookup and no flag read happens there.
-- mad.outbox is a view over every table's outbox (the key as text[]), for people to read.
-- Measured with pgbench, 8 writers of one-row INSERTs on 2 cores (docs/POSTGRES.md): a shared outbox with text[]
-- keys cost writers 26 % and reading a NOTIFY flag in each call ~7 % more; the typed per-table outbox costs 16 %,
-- and the capture functions carry no SET search_path (they name no operator unqualified and qualify every name, so
-- the writer's search_path cannot reach them; a SET costs every call a GUC save and restore).
--
-- Wake-up without a NOTIFY per writer transaction under load: a transaction that calls pg_notify serialises commits
-- (LIMITS.md). The NOTIFY mad_rows is compiled into the capture functions or left out of them: sidecars keep it in
-- while rows come slowly and sleep until a NOTIFY (the lowest latency); when rows come faster than a NOTIFY per
-- commit allows, a sidecar has the functions rewritten without it (mad.stream_set_notify, recorded in
-- mad.stream_wake) and polls the outbox every few milliseconds, until the rate falls again (StreamWorkerService).
--
-- Draining. A sidecar drains a table's outbox in batches: the plan's claim statement (mad.stream_claim_statement)
-- deletes up to stream_batch_rows outbox rows FOR UPDATE SKIP LOCKED and hands their keys to mad.stream_claim, which
-- takes a transaction-level advisory lock per key; the read of the keys' current rows travels in the same round
-- trip; then the upsert of the scored rows (and the delete of predictions whose rows are gone) and COMMIT. A sidecar
-- that dies mid-batch rolls back and the keys are drained again. A drained key is scored with the row's CURRENT
-- values. The statements come from mad.stream_plan once per table (and model version), so the sidecar prepares them.
--
-- Lock order: writers lock the source, then the outbox. TRUNCATE, unwatch and watch skip the outbox rows a
-- sidecar's batch holds (its read waits for the source they hold), and the batch drains them.

INSERT INTO mad.settings (name, value, description) VALUES
  ('stream_batch_rows', '1000', 'The most outbox rows one streaming batch drains.'),
  ('stream_batch_idle_timeout_ms', '30000',
   'How long a streaming batch may sit idle in its transaction (a sidecar stalled or stopped mid-batch) before the server ends its session and the keys it claimed are drained again.');

CREATE SCHEMA mad_outbox;
COMMENT ON SCHEMA mad_outbox IS 'ModelAsData: the keys of changed source rows waiting to be streamed, a table per watched prediction table';
GRANT USAGE ON SCHEMA mad_outbox TO mad_admin, mad_sidecar;

-- Whether the capture functions NOTIFY mad_rows now (mad.stream_set_notify keeps it; mad.watch reads it for a new
-- table's functions).
CREATE UNLOGGED TABLE mad.stream_wake (
  id int PRIMARY KEY CHECK (id = 1),
  notify boolean NOT NULL
);
INSERT INTO mad.stream_wake VALUES (1, true);
GRANT SELECT, UPDATE ON mad.stream_wake TO mad_sidecar;

-- Keys streamed while a refresh of the same table runs: the refresh's build table may hold older predictions for
-- them (read before the change), so when it is swapped in they are queued again.
CREATE TABLE mad.stream_during_refresh (
  job_id bigint NOT NULL REFERENCES mad.jobs (id) ON DELETE CASCADE,
  key text[] NOT NULL,
  PRIMARY KEY (job_id, key)
);

-- What each sidecar streamed, reported every few seconds: the rows/s of `mad tables status` and `mad jobs`.
CREATE TABLE mad.stream_stats (
  sidecar text NOT NULL,
  prediction_table text NOT NULL REFERENCES mad.prediction_tables (name) ON DELETE CASCADE,
  rows_total bigint NOT NULL,
  rows_per_second double precision NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sidecar, prediction_table)
);
GRANT SELECT ON mad.stream_during_refresh, mad.stream_stats TO mad_admin, mad_user, mad_sidecar;

ALTER TABLE mad.prediction_tables
  ADD COLUMN watched boolean NOT NULL DEFAULT false,
  -- Why the last streaming batch of this table failed as a whole (its keys stay queued and are retried), or NULL.
  ADD COLUMN stream_error text,
  ADD COLUMN stream_error_at timestamptz;

-- Lets the sidecar write a watched table's predictions itself (prepared statements, no definer call per batch).
CREATE FUNCTION mad.grant_stream_writes(table_name text) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON mad_out.%I TO mad_sidecar', table_name);
END
$$;

-- Empties a table's outbox, skipping the rows a sidecar's batch holds: that batch waits for the source the caller
-- (watch, unwatch, a TRUNCATE) holds, so waiting for its rows would deadlock; it drains them itself.
CREATE FUNCTION mad.clear_outbox(table_name text) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  IF pg_catalog.to_regclass(format('mad_outbox.%I', table_name)) IS NOT NULL THEN
    EXECUTE format('DELETE FROM mad_outbox.%1$I o WHERE o.mad_id = ANY (ARRAY(SELECT i.mad_id FROM mad_outbox.%1$I i FOR UPDATE SKIP LOCKED))', table_name);
  END IF;
END
$$;

-- mad.outbox, as DESIGN.md names it: every table's waiting keys in one view, the key as text[], for people to read
-- (writers and drains use the tables of mad_outbox). Rebuilt whenever an outbox table is created; it starts empty.
CREATE FUNCTION mad.rebuild_outbox_view() RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  EXECUTE 'CREATE OR REPLACE VIEW mad.outbox (prediction_table, id, key, enqueued_at) AS ' || coalesce(
    (SELECT string_agg(format('SELECT %L::text, o.mad_id, ARRAY[%s]::text[], o.mad_enqueued_at FROM mad_outbox.%I o', p.name,
                              mad.key_list(p, 'o.%I::text'),
                              p.name), ' UNION ALL ' ORDER BY p.name)
     FROM mad.prediction_tables p WHERE pg_catalog.to_regclass(format('mad_outbox.%I', p.name)) IS NOT NULL),
    'SELECT NULL::text, NULL::bigint, NULL::text[], NULL::timestamptz WHERE false');
END
$$;

SELECT mad.rebuild_outbox_view();
GRANT SELECT ON mad.outbox TO mad_admin, mad_user, mad_sidecar;

-- The four trigger functions of a watched table (operation i, u, d or t), named from a hash so that any table name fits.
CREATE FUNCTION mad.capture_function(table_name text, operation text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT format('mad.%I', 'capture_' || substr(md5(table_name), 1, 16) || '_' || operation);
$$;

-- Creates (or re-creates) a table's outbox and its capture functions, with or without the NOTIFY. No scoring and no
-- flag read: a capture call is one INSERT … SELECT from the transition table (two for an UPDATE, whose old keys lose
-- their prediction if the key changed).
CREATE FUNCTION mad.create_capture(binding mad.prediction_tables, notify boolean) RETURNS void
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
    EXECUTE format('GRANT SELECT ON %s TO mad_admin', outbox);
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

-- Whether writers' capture functions NOTIFY mad_rows: sidecars turn it off while rows come faster than a NOTIFY per
-- commit allows (it serialises commits) and poll instead, and on again when rows come slowly. A drain that turns it
-- off holds a shared session-level advisory lock (stream_poll) while it polls, and NOTIFY comes back on only when no drain holds
-- one: with several sidecars, one that drains little (because another drains most) does not turn it on under load,
-- and a drain whose session ends (closed or killed) lets go. Rewrites the watched tables' capture
-- functions only when the mode changes, one caller at a time (watch takes the same lock, stream_notify). Returns whether writers
-- now NOTIFY.
CREATE FUNCTION mad.stream_set_notify(notify boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  poll_key constant int := mad.lock_key('stream_poll');
  polling boolean := EXISTS (
    SELECT FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.classid = poll_key::oid AND l.objid = 0 AND l.objsubid = 2);
  binding mad.prediction_tables;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  IF notify AND polling THEN
    PERFORM pg_advisory_unlock_shared(poll_key, 0);
  ELSIF NOT notify AND NOT polling THEN
    PERFORM pg_advisory_lock_shared(poll_key, 0);
  END IF;
  PERFORM pg_advisory_xact_lock(mad.lock_key('stream_notify'), 0);
  IF notify AND NOT pg_try_advisory_xact_lock(poll_key, 0) THEN
    RETURN false; -- another drain polls
  END IF;
  UPDATE mad.stream_wake w SET notify = stream_set_notify.notify WHERE w.id = 1 AND w.notify <> stream_set_notify.notify;
  IF FOUND THEN
    FOR binding IN SELECT * FROM mad.prediction_tables p WHERE p.watched ORDER BY p.name LOOP
      PERFORM mad.create_capture(binding, notify);
    END LOOP;
  END IF;
  RETURN notify;
END
$$;

-- Starts streaming a prediction table: the caller must be allowed to read its source, as to create it.
CREATE FUNCTION mad.watch(name text) RETURNS void
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
CREATE FUNCTION mad.unwatch(name text) RETURNS void
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

-- Takes the keys a sidecar claimed from a table's outbox (the plan's 'claim' statement deletes them, as the sidecar,
-- and passes them here as a JSON array of text arrays), and takes a transaction-level advisory lock per key, in one
-- order, so two sidecars never score one key at once: the later one waits, and its next statement reads the row's
-- latest values. The keys go into the transaction-local setting mad.stream_keys that the plan's read and delete use.
-- Returns the number of keys, and the version the table's model reference means in this snapshot: a sidecar whose
-- plan scores another version (the alias moved) rolls back and plans again, so a row written after an alias move is
-- never scored by the old version.
CREATE FUNCTION mad.stream_claim(table_name text, keys jsonb, OUT key_count int, OUT model_version int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  refresh_job bigint;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  key_count := jsonb_array_length(keys);
  PERFORM set_config('mad.stream_keys', keys::text, true);
  -- The batch need not wait for its WAL flush: lost in a crash, it loses the outbox deletes with the predictions, and
  -- the keys are drained again. Not waiting keeps the drain out of the writers' group commits, and its rows visible sooner.
  PERFORM set_config('synchronous_commit', 'off', true);
  IF key_count = 0 THEN
    RETURN;
  END IF;
  model_version := mad.resolve_reference((SELECT p.model FROM mad.prediction_tables p WHERE p.name = table_name));
  -- Volatile calls run after the sort, so the locks are taken in hash order (no deadlock between two sidecars).
  PERFORM pg_advisory_xact_lock(h.lock_key)
  FROM (SELECT DISTINCT hashtextextended(table_name || ':' || k.value::text, 0) AS lock_key FROM jsonb_array_elements(keys) k) h
  ORDER BY h.lock_key;
  SELECT j.id INTO refresh_job FROM mad.jobs j WHERE j.prediction_table = table_name AND j.state = 'running';
  IF refresh_job IS NOT NULL THEN
    INSERT INTO mad.stream_during_refresh (job_id, key)
    SELECT refresh_job, ARRAY(SELECT jsonb_array_elements_text(k.value)) FROM jsonb_array_elements(keys) k
    ON CONFLICT DO NOTHING;
  END IF;
END
$$;

-- The statement a sidecar claims a batch of a table with: up to $1 outbox rows, oldest first, deleted as the sidecar
-- and handed with their distinct keys (as text) to mad.stream_claim in the same statement. Part of the table's plan.
-- The rows are found by the primary key and deleted by ctid (locked, so it cannot move): no scan of the outbox, whose
-- dead rows pile up between vacuums under load. The sidecar prepares it once, possibly while the outbox is empty, so
-- its drain sessions run with enable_seqscan off (a generic plan made then sorted a sequential scan: 3 ms a batch).
CREATE FUNCTION mad.stream_claim_statement(table_name text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(table_name);
BEGIN
  RETURN format(
    'WITH claimed AS (DELETE FROM mad_outbox.%1$I o WHERE o.ctid = ANY (ARRAY(SELECT i.ctid FROM mad_outbox.%1$I i ORDER BY i.mad_id LIMIT $1 FOR UPDATE SKIP LOCKED)) RETURNING o.*) '
    'SELECT s.key_count, s.model_version FROM mad.stream_claim(%2$L, (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(%3$s)), ''[]'') FROM (SELECT DISTINCT %4$s FROM claimed c) c)) s',
    binding.name, binding.name,
    mad.key_list(binding, 'c.%I::text'), mad.key_list(binding, 'c.%I'));
END
$$;

-- How to stream a table, built once per table and model version: the statement that reads the claimed keys' current
-- rows (keys as text, then each feature column once, as mad.task_plan reads them), the upsert of scored rows from
-- arrays (one per key column as text, one per output column, the errors, then the version), the delete of claimed
-- keys whose rows are gone (the found keys as arrays), and the version the model reference means now.
CREATE FUNCTION mad.stream_plan(table_name text) RETURNS jsonb
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
                    UNION ALL SELECT unnest(ARRAY['model_version', 'scored_at', 'error'])) u);
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
    'sha256', (SELECT v.sha256 FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version));
END
$$;

-- A refresh swapped in a new mad_out table: give the sidecar its writes again, and queue the keys streamed while the
-- refresh ran (its build table may have read them before they changed).
CREATE FUNCTION mad.stream_after_refresh() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
BEGIN
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = NEW.prediction_table;
  IF binding.watched THEN
    PERFORM mad.grant_stream_writes(binding.name);
    EXECUTE format('INSERT INTO mad_outbox.%I (%s) SELECT %s FROM mad.stream_during_refresh s WHERE s.job_id = $1',
                   binding.name,
                   mad.key_list(binding, '%I'), mad.key_list(binding, '(s.key[%3$s])::%2$s'))
      USING NEW.id;
    PERFORM pg_notify('mad_rows', 'plan:' || binding.name);
  END IF;
  DELETE FROM mad.stream_during_refresh s WHERE s.job_id = NEW.id;
  RETURN NULL;
END
$$;

CREATE TRIGGER stream_after_refresh AFTER UPDATE OF state ON mad.jobs
FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running') EXECUTE FUNCTION mad.stream_after_refresh();

-- A sidecar's figures for one table (rows streamed since it started and its recent rate), and the error of a failed
-- batch (NULL once batches succeed again).
CREATE FUNCTION mad.stream_report(sidecar text, table_name text, rows_total bigint, rows_per_second double precision, error text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  INSERT INTO mad.stream_stats AS s (sidecar, prediction_table, rows_total, rows_per_second)
  SELECT stream_report.sidecar, p.name, stream_report.rows_total, stream_report.rows_per_second
  FROM mad.prediction_tables p WHERE p.name = table_name
  ON CONFLICT ON CONSTRAINT stream_stats_pkey DO UPDATE
    SET rows_total = EXCLUDED.rows_total, rows_per_second = EXCLUDED.rows_per_second, reported_at = now();
  UPDATE mad.prediction_tables p
  SET stream_error = stream_report.error, stream_error_at = CASE WHEN stream_report.error IS NULL THEN NULL ELSE now() END
  WHERE p.name = table_name AND p.stream_error IS DISTINCT FROM stream_report.error;
END
$$;

-- The keys waiting in a table's outbox and the age of the oldest. A definer: callers need no grant on the outbox.
CREATE FUNCTION mad.stream_outbox_lag(table_name text, OUT waiting bigint, OUT oldest_age interval)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  waiting := 0;
  IF pg_catalog.to_regclass(format('mad_outbox.%I', table_name)) IS NOT NULL THEN
    EXECUTE format('SELECT count(*), now() - min(o.mad_enqueued_at) FROM mad_outbox.%I o', table_name) INTO waiting, oldest_age;
  END IF;
END
$$;

-- Live lag of a watched table: keys waiting, the age of the oldest, the rows/s the sidecars report (those heard from
-- in the last 10 s), and the error of the last failed batch.
CREATE FUNCTION mad.stream_lag(table_name text)
RETURNS TABLE (waiting bigint, oldest_age interval, rows_per_second double precision, error text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  SELECT o.waiting, o.oldest_age,
         (SELECT coalesce(sum(s.rows_per_second), 0) FROM mad.stream_stats s
          WHERE s.prediction_table = table_name AND s.reported_at > now() - interval '10 seconds'),
         (SELECT p.stream_error FROM mad.prediction_tables p WHERE p.name = table_name)
  FROM mad.stream_outbox_lag(table_name) o;
$$;

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.capture_function(text, text), mad.clear_outbox(text),
  mad.create_capture(mad.prediction_tables, boolean), mad.grant_stream_writes(text), mad.rebuild_outbox_view(),
  mad.stream_after_refresh(), mad.stream_claim(text, jsonb), mad.stream_claim_statement(text), mad.stream_lag(text),
  mad.stream_outbox_lag(text), mad.stream_plan(text), mad.stream_report(text, text, bigint, double precision, text),
  mad.stream_set_notify(boolean), mad.unwatch(text), mad.watch(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.stream_lag(text), mad.unwatch(text), mad.watch(text) TO mad_admin, mad_user;
GRANT EXECUTE ON FUNCTION mad.stream_claim(text, jsonb), mad.stream_claim_statement(text), mad.stream_plan(text),
  mad.stream_report(text, text, bigint, double precision, text), mad.stream_set_notify(boolean) TO mad_sidecar;

-- Streaming, cheaper for writers: each watched table gets an outbox of its own, mad_outbox.<name>, whose columns are
-- the source's key columns with their own types, and the wake-up is compiled into the capture functions instead of
-- read by every trigger call. Measured with pgbench, 8 writers of one-row INSERTs on 2 cores (docs/POSTGRES.md): the
-- shared outbox of migration 030 (text[] keys, table name and op per row) cost writers 26 %, reading the NOTIFY flag
-- in each call a further ~7 %; a typed per-table outbox 16 %, and dropping SET search_path from the trigger functions
-- (they name no operator and qualify every name, so the writer's search_path cannot reach them) a little more.
--
-- Lock order is unchanged from 030: writers lock the source, then the outbox. TRUNCATE, unwatch and watch still
-- skip the outbox rows a sidecar's batch holds (its read waits for the source they hold), and the batch drains them.

INSERT INTO mad.settings (name, value, description) VALUES
  ('stream_batch_idle_timeout_ms', '30000',
   'How long a streaming batch may sit idle in its transaction (a sidecar stalled or stopped mid-batch) before the server ends its session and the keys it claimed are drained again.');

CREATE SCHEMA mad_outbox;
COMMENT ON SCHEMA mad_outbox IS 'ModelAsData: the keys of changed source rows waiting to be streamed, a table per watched prediction table';
GRANT USAGE ON SCHEMA mad_outbox TO mad_admin, mad_sidecar;

-- A table's key columns, each formatted with pattern (%1$I the column, %2$s its type, %3$s its position), joined:
-- the column lists, casts and key arrays of the statements below.
CREATE FUNCTION mad.key_list(binding mad.prediction_tables, pattern text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT string_agg(format(pattern, u.k, binding.key_types[u.n], u.n), ', ' ORDER BY u.n) FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n);
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

-- 030's shared outbox, until its keys have moved (at the end of this script); the name becomes a view.
ALTER TABLE mad.outbox RENAME TO outbox_030;

-- mad.outbox, as DESIGN.md names it: every table's waiting keys in one view, the key as text[], for people to read
-- (writers and drains use the tables of mad_outbox). Rebuilt whenever an outbox table is created.
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
-- off holds a shared session-level advisory lock while it polls, and NOTIFY comes back on only when no drain holds
-- one: with several sidecars, one that drains little (because another drains most) does not turn it on under load,
-- and a drain whose session ends (closed or killed) lets go. Rewrites the watched tables' capture
-- functions only when the mode changes, one caller at a time (watch takes the same lock). Returns whether writers
-- now NOTIFY.
CREATE FUNCTION mad.stream_set_notify(notify boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  poll_key constant int := hashtext('mad.stream_poll') & 2147483647;
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
  PERFORM pg_advisory_xact_lock(hashtextextended('mad.stream_set_notify', 0));
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
CREATE OR REPLACE FUNCTION mad.watch(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  operation text;
BEGIN
  binding := mad.require_prediction_table(watch.name);
  PERFORM mad.require_source_access(binding.source, 'watch a prediction table');
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'Only a table can be watched; % is not one.', binding.source USING ERRCODE = 'wrong_object_type';
  END IF;
  IF binding.watched THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('mad.stream_set_notify', 0));
  PERFORM mad.create_capture(binding, (SELECT w.notify FROM mad.stream_wake w WHERE w.id = 1));
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                   'mad_watch_' || binding.name || '_' || operation,
                   CASE operation WHEN 'i' THEN 'INSERT' WHEN 'u' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'TRUNCATE' END,
                   binding.source,
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
  PERFORM mad.require_source_access(binding.source, 'unwatch a prediction table');
  FOREACH operation IN ARRAY ARRAY['i', 'u', 'd', 't'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'mad_watch_' || binding.name || '_' || operation, binding.source);
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

-- A refresh swapped in a new mad_out table: give the sidecar its writes again, and queue the keys streamed while the
-- refresh ran (its build table may have read them before they changed).
CREATE OR REPLACE FUNCTION mad.stream_after_refresh() RETURNS trigger
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

-- Live lag of a watched table: keys waiting, the age of the oldest, the rows/s the sidecars report (those heard from
-- in the last 10 s), and the error of the last failed batch. A definer: callers need no grant on the outbox.
CREATE FUNCTION mad.stream_outbox_lag(table_name text, OUT waiting bigint, OUT oldest_age interval)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  waiting := 0;
  IF pg_catalog.to_regclass(format('mad_outbox.%I', table_name)) IS NOT NULL THEN
    EXECUTE format('SELECT count(*), now() - min(o.mad_enqueued_at) FROM mad_outbox.%I o', table_name) INTO waiting, oldest_age;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION mad.stream_lag(table_name text)
RETURNS TABLE (waiting bigint, oldest_age interval, rows_per_second double precision, error text)
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT o.waiting, o.oldest_age,
         (SELECT coalesce(sum(s.rows_per_second), 0) FROM mad.stream_stats s
          WHERE s.prediction_table = table_name AND s.reported_at > now() - interval '10 seconds'),
         (SELECT p.stream_error FROM mad.prediction_tables p WHERE p.name = table_name)
  FROM mad.stream_outbox_lag(table_name) o;
$$;

-- Move tables watched under 030 to their own outboxes, keys waiting included.
DO $$
DECLARE
  binding mad.prediction_tables;
  suffix text;
BEGIN
  FOR binding IN SELECT * FROM mad.prediction_tables p WHERE p.watched ORDER BY p.name LOOP
    FOREACH suffix IN ARRAY ARRAY['_i', '_u', '_d', '_t'] LOOP
      EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'mad_watch_' || binding.name || suffix, binding.source);
    END LOOP;
    EXECUTE format('DROP FUNCTION IF EXISTS %s()', mad.capture_function(binding.name));
    UPDATE mad.prediction_tables p SET watched = false WHERE p.name = binding.name;
    PERFORM mad.watch(binding.name);
    EXECUTE format('INSERT INTO mad_outbox.%I (%s) SELECT %s FROM mad.outbox_030 o WHERE o.prediction_table = $1 ORDER BY o.id',
                   binding.name,
                   mad.key_list(binding, '%I'), mad.key_list(binding, '(o.key[%3$s])::%2$s'))
      USING binding.name;
  END LOOP;
END
$$;

DROP FUNCTION mad.stream_claim(text, int);
DROP FUNCTION mad.capture_function(text);
DROP TABLE mad.outbox_030;

REVOKE ALL ON FUNCTION mad.key_list(mad.prediction_tables, text), mad.clear_outbox(text), mad.capture_function(text, text), mad.create_capture(mad.prediction_tables, boolean), mad.rebuild_outbox_view(), mad.stream_set_notify(boolean),
  mad.stream_claim(text, jsonb), mad.stream_claim_statement(text), mad.stream_outbox_lag(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.stream_set_notify(boolean), mad.stream_claim(text, jsonb), mad.stream_claim_statement(text) TO mad_sidecar;
GRANT EXECUTE ON FUNCTION mad.stream_outbox_lag(text) TO mad_admin, mad_user, mad_sidecar;

-- Refresh jobs: mad.refresh(name) records a job and splits the source into key-range tasks, which sidecars claim
-- with FOR UPDATE SKIP LOCKED under a lease (a random token and an expiry). A task's rows are written into the job's
-- build table mad_build.job_<id> by binary COPY in the same transaction that completes the task, and completion is
-- fenced on the lease token: a sidecar that lost its lease rolls its rows back, so each task's rows land exactly once.
-- The build table has the output's primary key, so a key written twice is refused. The task that completes the job
-- swaps the build table in as mad_out.<name> in one transaction: readers see the old predictions or the new ones, never a mix, and rows deleted from the source are gone.
--
-- Lock order, to keep sidecars from deadlocking: a job row before its task rows (complete, fail); claim, renew and
-- release touch only the task row.

CREATE TABLE mad.jobs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  prediction_table text NOT NULL REFERENCES mad.prediction_tables (name) ON DELETE CASCADE,
  kind text NOT NULL DEFAULT 'refresh' CHECK (kind IN ('refresh')),
  model text NOT NULL,
  version int NOT NULL,
  state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
  build_table text NOT NULL,
  tasks_total int NOT NULL,
  tasks_done int NOT NULL DEFAULT 0,
  rows_total bigint NOT NULL,
  rows_done bigint NOT NULL DEFAULT 0,
  rows_failed bigint NOT NULL DEFAULT 0,
  error text,
  created_by text NOT NULL DEFAULT session_user,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  FOREIGN KEY (model, version) REFERENCES mad.model_versions (model, version)
);

-- One running refresh per prediction table.
CREATE UNIQUE INDEX jobs_one_running ON mad.jobs (prediction_table) WHERE state = 'running';

CREATE TABLE mad.tasks (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id bigint NOT NULL REFERENCES mad.jobs (id) ON DELETE CASCADE,
  ordinal int NOT NULL,
  lo text[],  -- inclusive lower bound of the key (values as text), NULL: unbounded
  hi text[],  -- exclusive upper bound, NULL: unbounded
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
  lease_token uuid,
  lease_until timestamptz,
  sidecar text,
  attempts int NOT NULL DEFAULT 0,
  rows_done bigint,
  rows_failed bigint,
  error text,
  started_at timestamptz,
  finished_at timestamptz,
  UNIQUE (job_id, ordinal),
  CONSTRAINT tasks_running_has_lease CHECK (state <> 'running' OR (lease_token IS NOT NULL AND lease_until IS NOT NULL))
);

-- What sidecars scan for: queued tasks and running ones whose lease may have expired.
CREATE INDEX tasks_open ON mad.tasks (job_id, ordinal) WHERE state IN ('queued', 'running');

GRANT SELECT ON mad.jobs, mad.tasks TO mad_admin, mad_user, mad_sidecar;

CREATE FUNCTION mad.setting_int(setting text, fallback int) RETURNS int
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce((SELECT value::int FROM mad.settings WHERE name = setting), fallback);
$$;

CREATE FUNCTION mad.require_prediction_table(table_name text) RETURNS mad.prediction_tables
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  hit mad.prediction_tables;
BEGIN
  PERFORM mad.check_name(table_name, 'prediction table');
  SELECT * INTO hit FROM mad.prediction_tables p WHERE p.name = table_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'No prediction table % (%). Create one with mad.create_prediction_table.', quote_literal(table_name),
      coalesce('tables: ' || (SELECT string_agg(p.name, ', ' ORDER BY p.name) FROM mad.prediction_tables p), 'there are none')
      USING ERRCODE = 'no_data_found';
  END IF;
  RETURN hit;
END
$$;

-- Starts a full refresh of a prediction table with the version its model reference means now; returns the job id
-- at once. A refresh already running for the table is not started twice: its id is returned. The caller must be
-- allowed to SELECT from the source.
CREATE FUNCTION mad.refresh(name text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(refresh.name);
  model_name text := split_part(binding.model, '@', 1);
  model_version int;
  signature jsonb;
  running bigint;
  new_job bigint;
  build text;
  total bigint;
  task_count int;
  keys text;
  not_null text;
  sample text := '';
  step bigint;
  bound record;
  stale record;
  previous text[];
  ordinal int := 0;
  missing text;
BEGIN
  PERFORM mad.require_source_access(binding.source, 'refresh ' || quote_ident(binding.name));
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

  EXECUTE format('SELECT count(*) FROM %s', binding.source) INTO total;
  task_count := greatest(1, least(mad.setting_int('refresh_max_tasks', 64),
                                  ceil(total::numeric / greatest(1, mad.setting_int('refresh_task_rows', 50000)))::int));

  INSERT INTO mad.jobs (prediction_table, model, version, build_table, tasks_total, rows_total)
  VALUES (binding.name, model_name, model_version, '', 0, total) RETURNING id INTO new_job;
  build := format('mad_build.%I', 'job_' || new_job);
  -- With the primary key from the start: tasks maintain it as they write, overlapped with scoring, instead of one
  -- index build after the last task; it also refuses a key written twice at once.
  EXECUTE format('CREATE TABLE %s (LIKE mad_out.%I INCLUDING INDEXES)', build, binding.name);
  EXECUTE format('GRANT SELECT, INSERT ON %s TO mad_sidecar', build);

  -- Key ranges from a sample of the key in key order: each task covers [previous bound, next bound).
  IF task_count > 1 THEN
    keys := (SELECT string_agg(format('%I', k), ', ' ORDER BY n) FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n));
    not_null := (SELECT string_agg(format('%I IS NOT NULL', k), ' AND ') FROM unnest(binding.key_columns) k);
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) IN ('r', 'm') THEN
      sample := format(' TABLESAMPLE SYSTEM (%s)', least(100, round(100.0 * task_count * 1000 / total, 4)));
    END IF;
    step := NULL;
    FOR bound IN EXECUTE format(
      'SELECT b FROM (SELECT ARRAY[%s] AS b, row_number() OVER (ORDER BY %s) AS rn, count(*) OVER () AS c FROM %s%s WHERE %s) s ' ||
      'WHERE rn %% greatest(1, c / %s) = 0 AND rn < c ORDER BY rn',
      (SELECT string_agg(format('%I::text', k), ', ' ORDER BY n) FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n)),
      keys, binding.source, sample, not_null, task_count)
    LOOP
      CONTINUE WHEN bound.b = previous;
      INSERT INTO mad.tasks (job_id, ordinal, lo, hi) VALUES (new_job, ordinal, previous, bound.b);
      previous := bound.b;
      ordinal := ordinal + 1;
    END LOOP;
  END IF;
  INSERT INTO mad.tasks (job_id, ordinal, lo, hi) VALUES (new_job, ordinal, previous, NULL);

  UPDATE mad.jobs j SET build_table = build, tasks_total = ordinal + 1 WHERE j.id = new_job;
  PERFORM pg_notify('mad_jobs', json_build_object('event', 'created', 'job', new_job, 'table', binding.name)::text);
  RETURN new_job;
END
$$;

-- Claims the first queued task (or one whose lease expired) of a running job that no other sidecar holds.
CREATE FUNCTION mad.claim_task(sidecar text, lease interval)
RETURNS TABLE (task_id bigint, job_id bigint, lease_token uuid, prediction_table text, model text, version int, sha256 text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  RETURN QUERY
    WITH claimed AS (
      UPDATE mad.tasks t
      SET state = 'running', lease_token = gen_random_uuid(), lease_until = clock_timestamp() + claim_task.lease,
          sidecar = claim_task.sidecar, attempts = t.attempts + 1, started_at = clock_timestamp()
      WHERE t.id IN (
        SELECT o.id FROM mad.tasks o JOIN mad.jobs j ON j.id = o.job_id
        WHERE j.state = 'running'
          AND (o.state = 'queued' OR (o.state = 'running' AND o.lease_until < clock_timestamp()))
        ORDER BY o.job_id, o.ordinal
        LIMIT 1
        FOR UPDATE OF o SKIP LOCKED)
      RETURNING t.id, t.job_id, t.lease_token)
    SELECT c.id, c.job_id, c.lease_token, j.prediction_table, j.model, j.version, v.sha256
    FROM claimed c JOIN mad.jobs j ON j.id = c.job_id JOIN mad.model_versions v ON v.model = j.model AND v.version = j.version;
END
$$;

-- Extends a lease; false when the task is no longer this holder's (it expired and another sidecar took it).
CREATE FUNCTION mad.renew_task(task_id bigint, lease_token uuid, lease interval) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  UPDATE mad.tasks t SET lease_until = clock_timestamp() + renew_task.lease
  WHERE t.id = renew_task.task_id AND t.lease_token = renew_task.lease_token AND t.state = 'running';
  RETURN FOUND;
END
$$;

-- How a sidecar reads a binding's features: each distinct feature column once, in the order first used, as an
-- expression in the type it arrives in (numbers and booleans as they are, numeric as double precision, anything else
-- as text), and for each model slot the index of the column that feeds it. Shared by refresh tasks and streaming.
CREATE FUNCTION mad.feature_reads(binding mad.prediction_tables, OUT features text[], OUT expressions text[], OUT read_types text[], OUT slots int[])
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  feature text;
  hit record;
BEGIN
  features := ARRAY(SELECT DISTINCT ON (c) c FROM unnest(binding.feature_columns) WITH ORDINALITY u(c, n) ORDER BY c, n);
  features := ARRAY(SELECT c FROM unnest(features) c ORDER BY array_position(binding.feature_columns, c));
  expressions := '{}';
  read_types := '{}';
  FOREACH feature IN ARRAY features LOOP
    SELECT * INTO hit FROM mad.find_column(binding.source, feature);
    IF hit.type IN ('real'::regtype, 'double precision'::regtype, 'smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'boolean'::regtype) THEN
      expressions := expressions || format('%I', feature);
      read_types := read_types || hit.type::text;
    ELSIF hit.type = 'numeric'::regtype THEN
      expressions := expressions || format('%I::double precision', feature);
      read_types := read_types || 'double precision'::text;
    ELSE
      expressions := expressions || format('%I::text', feature);
      read_types := read_types || 'text'::text;
    END IF;
  END LOOP;
  slots := ARRAY(SELECT array_position(features, c) - 1 FROM unnest(binding.feature_columns) WITH ORDINALITY u(c, n) ORDER BY n);
END
$$;

-- What a sidecar needs to run a task: the statement that reads its rows (keys, then the distinct feature columns,
-- each with the type it arrives in), the build table, and which feature column feeds each model slot.
CREATE FUNCTION mad.task_plan(task_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  task mad.tasks;
  job mad.jobs;
  binding mad.prediction_tables;
  reads record;
  conditions text[] := '{}';
  keys text;
  typed_lo text;
  typed_hi text;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  SELECT * INTO task FROM mad.tasks t WHERE t.id = task_plan.task_id;
  SELECT * INTO job FROM mad.jobs j WHERE j.id = task.job_id;
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = job.prediction_table;
  SELECT * INTO reads FROM mad.feature_reads(binding);

  keys := (SELECT string_agg(format('%I', k), ', ' ORDER BY n) FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n));
  IF task.lo IS NOT NULL THEN
    typed_lo := (SELECT string_agg(format('%L::%s', v, binding.key_types[n]), ', ' ORDER BY n) FROM unnest(task.lo) WITH ORDINALITY u(v, n));
    conditions := conditions || format('ROW(%s) >= ROW(%s)', keys, typed_lo);
  END IF;
  IF task.hi IS NOT NULL THEN
    typed_hi := (SELECT string_agg(format('%L::%s', v, binding.key_types[n]), ', ' ORDER BY n) FROM unnest(task.hi) WITH ORDINALITY u(v, n));
    conditions := conditions || format('ROW(%s) < ROW(%s)', keys, typed_hi);
  END IF;

  RETURN jsonb_build_object(
    'query', format('SELECT %s FROM %s%s', array_to_string(ARRAY[keys] || reads.expressions, ', '), binding.source,
                    CASE WHEN cardinality(conditions) > 0 THEN ' WHERE ' || array_to_string(conditions, ' AND ') ELSE '' END),
    'build_table', job.build_table,
    'key_columns', to_jsonb(binding.key_columns),
    'key_types', to_jsonb(binding.key_types),
    'feature_columns', to_jsonb(reads.features),
    'feature_types', to_jsonb(reads.read_types),
    'slots', to_jsonb(reads.slots),
    'columns', binding.columns,
    'model', job.model,
    'version', job.version);
END
$$;

-- Marks a task done, fenced on its lease token, and adds its rows to the job's progress; the last task swaps the
-- build table in. Call it in the transaction that wrote the task's rows, as its last statement before COMMIT:
-- when the lease was lost it raises (SQLSTATE 55M02), and the rows roll back with it. Returns the job's state.
CREATE FUNCTION mad.complete_task(task_id bigint, lease_token uuid, rows_done bigint, rows_failed bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  job mad.jobs;
  binding mad.prediction_tables;
  keys text;
  state text := 'running';
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
  keys := (SELECT string_agg(format('%I', k), ', ' ORDER BY n) FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n));
  BEGIN
    EXECUTE format('DROP TABLE IF EXISTS mad_out.%I', binding.name);
    EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', job.build_table, 'job_' || job.id || '_pkey', left(binding.name, 58) || '_pkey');
    EXECUTE format('ALTER TABLE %s RENAME TO %I', job.build_table, binding.name);
    EXECUTE format('ALTER TABLE mad_build.%I SET SCHEMA mad_out', binding.name);
    EXECUTE format('REVOKE INSERT ON mad_out.%I FROM mad_sidecar', binding.name);
    EXECUTE format('GRANT SELECT ON mad_out.%I TO mad_admin, mad_user', binding.name);
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
  END;
  PERFORM pg_notify('mad_jobs', json_build_object('event', state, 'job', job.id, 'table', binding.name)::text);
  RETURN state;
END
$$;

-- Gives a task back. retry: queue it again (a lost connection, a shutdown); else record the error, and once the task
-- has failed refresh_max_attempts times (or retry is false) fail the whole job. Fenced on the lease token.
CREATE FUNCTION mad.fail_task(task_id bigint, lease_token uuid, error text, retry boolean) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  job mad.jobs;
  task mad.tasks;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  SELECT j.* INTO job FROM mad.jobs j JOIN mad.tasks t ON t.job_id = j.id WHERE t.id = fail_task.task_id FOR UPDATE OF j;
  SELECT * INTO task FROM mad.tasks t WHERE t.id = fail_task.task_id AND t.lease_token = fail_task.lease_token AND t.state = 'running' FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'lost';
  END IF;
  IF retry AND task.attempts < mad.setting_int('refresh_max_attempts', 5) THEN
    UPDATE mad.tasks t SET state = 'queued', lease_token = NULL, lease_until = NULL, error = fail_task.error WHERE t.id = task.id;
    PERFORM pg_notify('mad_jobs', json_build_object('event', 'retry', 'job', job.id)::text);
    RETURN 'queued';
  END IF;
  UPDATE mad.tasks t SET state = 'failed', lease_token = NULL, lease_until = NULL, error = fail_task.error, finished_at = clock_timestamp()
  WHERE t.id = task.id;
  UPDATE mad.jobs j SET state = 'failed', finished_at = clock_timestamp(),
    error = format('Task %s (attempt %s) failed: %s', task.ordinal, task.attempts, fail_task.error)
  WHERE j.id = job.id AND j.state = 'running';
  PERFORM pg_notify('mad_jobs', json_build_object('event', 'failed', 'job', job.id, 'table', job.prediction_table)::text);
  RETURN 'failed';
END
$$;

REVOKE ALL ON FUNCTION mad.setting_int(text, int), mad.require_prediction_table(text), mad.refresh(text),
  mad.feature_reads(mad.prediction_tables), mad.claim_task(text, interval), mad.renew_task(bigint, uuid, interval), mad.task_plan(bigint),
  mad.complete_task(bigint, uuid, bigint, bigint), mad.fail_task(bigint, uuid, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.setting_int(text, int), mad.require_prediction_table(text), mad.refresh(text),
  mad.claim_task(text, interval), mad.renew_task(bigint, uuid, interval), mad.task_plan(bigint),
  mad.complete_task(bigint, uuid, bigint, bigint), mad.fail_task(bigint, uuid, text, boolean) TO mad_admin, mad_user, mad_sidecar;

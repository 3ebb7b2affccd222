-- Prediction tables and their full refresh.
--
-- A prediction table is a model reference bound to a source table, scored into a typed table mad_out.<name> that
-- analysts join. The binding (key, feature mapping, decoded columns) is resolved and checked here, in SQL, once: the
-- CLI calls these functions too, so SQL users and `mad tables create` get the same rules and the same messages.
-- Every user identifier reaches dynamic SQL through regclass, mad.qualified_name or format('%I'); values through
-- format('%L').
--
-- Refresh jobs: mad.refresh(name) records a job and splits the source into key-range tasks, which sidecars claim
-- with FOR UPDATE SKIP LOCKED under a lease (a random token and an expiry). A task's rows are written into the job's
-- build table mad_build.job_<id> by binary COPY in the same transaction that completes the task, and completion is
-- fenced on the lease token: a sidecar that lost its lease gets SQLSTATE 55M02 and rolls its rows back, so each
-- task's rows land exactly once. The build table has the output's primary key, so a key written twice is refused.
-- The task that completes the job swaps the build table in as mad_out.<name> in one transaction: readers see the old
-- predictions or the new ones, never a mix, and rows deleted from the source are gone.
--
-- Lock order, to keep sidecars from deadlocking: a job row before its task rows (complete, fail); claim, renew and
-- release touch only the task row.

CREATE SCHEMA IF NOT EXISTS mad_build;
REVOKE ALL ON SCHEMA mad_build FROM PUBLIC;
GRANT USAGE ON SCHEMA mad_build TO mad_sidecar;
COMMENT ON SCHEMA mad_build IS 'ModelAsData: tables being filled by a running full refresh, swapped into mad_out when it finishes.';

INSERT INTO mad.settings (name, value, description) VALUES
  ('refresh_task_rows', '50000', 'About how many source rows one refresh task (key range) covers.'),
  ('refresh_max_tasks', '64', 'The most tasks one refresh is split into.'),
  ('refresh_max_attempts', '5', 'A refresh task that fails this many times fails its job.');

CREATE TABLE mad.prediction_tables (
  name text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]*$' AND length(name) <= 63),
  source regclass NOT NULL,
  key_columns text[] NOT NULL CHECK (cardinality(key_columns) > 0),
  key_types text[] NOT NULL,
  model text NOT NULL,
  features jsonb NOT NULL,
  feature_columns text[] NOT NULL,
  columns jsonb NOT NULL,
  created_by text NOT NULL DEFAULT mad.caller_role(),
  -- The role the table belongs to: only it (or a member of it) and mad_admin may refresh, watch or unwatch it.
  owner text NOT NULL DEFAULT mad.caller_role(),
  created_at timestamptz NOT NULL DEFAULT now(),
  refreshed_at timestamptz,
  refreshed_version int,
  rows_scored bigint,
  rows_failed bigint,
  last_job bigint
);

GRANT SELECT ON mad.prediction_tables TO mad_admin, mad_user, mad_sidecar;

-- A binding's key columns, each formatted with pattern (%1$I the column, %2$s its type, %3$s its position from 1,
-- %4$s its position from 0), joined with separator: the column lists, casts, conditions and key arrays of every
-- statement generated for a prediction table.
CREATE FUNCTION mad.key_list(binding mad.prediction_tables, pattern text, separator text DEFAULT ', ') RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT string_agg(format(pattern, u.k, binding.key_types[u.n], u.n, u.n - 1), separator ORDER BY u.n)
  FROM unnest(binding.key_columns) WITH ORDINALITY u(k, n);
$$;

-- Key values given as text (a task's bounds), as literals of the binding's key types.
CREATE FUNCTION mad.key_values(binding mad.prediction_tables, key_values text[]) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT string_agg(format('%L::%s', u.v, binding.key_types[u.n]), ', ' ORDER BY u.n) FROM unnest(key_values) WITH ORDINALITY u(v, n);
$$;

-- A relation as generated statements name it: always schema-qualified, whatever the search_path of the session
-- that runs them (a sidecar's, a writer's), where a regclass's own text leaves out a schema on the search_path.
CREATE FUNCTION mad.qualified_name(relation regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = relation;
$$;

-- The SQL type of a decoded output column (ModelAsData.Core.Onnx.ColumnType in its snake_case JSON form).
CREATE FUNCTION mad.output_sql_type(column_type text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE column_type WHEN 'real' THEN 'real' WHEN 'integer' THEN 'bigint' WHEN 'text' THEN 'text'
                          WHEN 'real_array' THEN 'real[]' END;
$$;

-- Whether a source column of this type can feed a model input of this element type; text is converted row by row
-- (a value that does not parse is that row's error).
CREATE FUNCTION mad.column_feeds(column_type regtype, input_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE
    WHEN input_type = 'string' THEN true
    ELSE column_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'real'::regtype,
                         'double precision'::regtype, 'numeric'::regtype, 'boolean'::regtype,
                         'text'::regtype, 'character varying'::regtype, 'character'::regtype)
  END;
$$;

-- The caller may bind or refresh over a source only when it may read it itself: the sidecar reads for it.
CREATE FUNCTION mad.require_source_access(source regclass, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT (pg_catalog.pg_has_role(mad.caller_role(), 'mad_user', 'MEMBER') OR pg_catalog.pg_has_role(mad.caller_role(), 'mad_admin', 'MEMBER')) THEN
    RAISE EXCEPTION 'permission denied to %: role % needs role mad_user or mad_admin', action, quote_ident(mad.caller_role())
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('An administrator can run: GRANT mad_user TO %I;', mad.caller_role());
  END IF;
  IF NOT pg_catalog.has_table_privilege(mad.caller_role(), source, 'SELECT') THEN
    RAISE EXCEPTION 'permission denied to %: role % may not SELECT from %', action, quote_ident(mad.caller_role()), source
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('The owner of the table can run: GRANT SELECT ON %s TO %I;', source, mad.caller_role());
  END IF;
END
$$;

-- Raises unless the caller owns the binding (is its owner role or a member of it) or is a mad_admin.
CREATE FUNCTION mad.require_binding_owner(binding mad.prediction_tables, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  caller text := mad.caller_role();
BEGIN
  IF caller = binding.owner
     OR pg_catalog.pg_has_role(caller, 'mad_admin', 'MEMBER')
     OR (EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = binding.owner) AND pg_catalog.pg_has_role(caller, binding.owner, 'MEMBER')) THEN
    RETURN;
  END IF;
  RAISE EXCEPTION 'permission denied to %: prediction table % belongs to role %; role % needs to be that role or mad_admin',
    action, quote_literal(binding.name), quote_ident(binding.owner), quote_ident(caller)
    USING ERRCODE = 'insufficient_privilege',
          HINT = format('Its owner can run it, or an administrator can run: GRANT %I TO %I;', binding.owner, caller);
END
$$;

-- Watching puts triggers on the source: the caller needs the TRIGGER privilege on it (its owner has it).
CREATE FUNCTION mad.require_trigger_privilege(source regclass, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF NOT pg_catalog.has_table_privilege(mad.caller_role(), source, 'TRIGGER') THEN
    RAISE EXCEPTION 'permission denied to %: role % needs the TRIGGER privilege on %', action, quote_ident(mad.caller_role()), source
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('The owner of the table can run: GRANT TRIGGER ON %s TO %I;', source, mad.caller_role());
  END IF;
END
$$;

-- The source's columns, for messages.
CREATE FUNCTION mad.describe_columns(source regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT coalesce(string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), '(none)')
  FROM pg_catalog.pg_attribute a WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped;
$$;

-- A column of the source by name: exactly as written, else ignoring case (as the embedded store matches). NULL if none.
CREATE FUNCTION mad.find_column(source regclass, wanted text) RETURNS TABLE (name text, type regtype, type_name text)
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT a.attname::text, a.atttypid::regtype, pg_catalog.format_type(a.atttypid, a.atttypmod)
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped AND lower(a.attname) = lower(wanted)
  ORDER BY (a.attname = wanted) DESC, a.attnum
  LIMIT 1;
$$;

-- Splits 'churn', 'churn@production', 'churn@7' and resolves it to a version number.
CREATE FUNCTION mad.resolve_reference(reference text) RETURNS int
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
BEGIN
  IF reference IS NULL OR reference = '' THEN
    RAISE EXCEPTION 'A model reference is empty: write ''name'', ''name@alias'' or ''name@version''.' USING ERRCODE = 'invalid_name';
  END IF;
  IF position('@' IN reference) = 0 THEN
    RETURN mad.resolve(reference, NULL);
  END IF;
  RETURN mad.resolve(split_part(reference, '@', 1), substr(reference, position('@' IN reference) + 1));
END
$$;

-- A ready version's signature, or an error that says why it cannot score.
CREATE FUNCTION mad.ready_signature(model_name text, model_version int) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  hit mad.model_versions%ROWTYPE;
BEGIN
  SELECT * INTO hit FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version;
  IF hit.status IS DISTINCT FROM 'ready' THEN
    RAISE EXCEPTION 'Model %@% is %: only a ready version can score.', model_name, model_version, coalesce(hit.status, 'missing')
      USING ERRCODE = '55M01', HINT = 'A running sidecar (`mad serve`) validates pending versions.';
  END IF;
  RETURN hit.signature;
END
$$;

-- Maps each model input to source columns: by the given mapping, else by the version's metadata key "features",
-- else each input to the column of its own name. Returns {"mapping": {input: [column, ...]}, "slots": [column, ...]}
-- with the source's spelling of every column, or raises naming the input, what it needs and the columns there are.
CREATE FUNCTION mad.map_features(source regclass, model_name text, signature jsonb, mapping jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  input jsonb;
  input_name text;
  width int;
  node jsonb;
  wanted text[];
  wanted_column text;
  hit record;
  resolved jsonb := '{}';
  slots jsonb := '[]';
  resolved_columns jsonb;
  unknown text;
BEGIN
  IF mapping IS NOT NULL AND jsonb_typeof(mapping) <> 'object' THEN
    RAISE EXCEPTION 'Features must be a JSON object such as {"float_input": ["a", "b"]}; got %.', mapping
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR input IN SELECT value FROM jsonb_array_elements(signature -> 'inputs') LOOP
    input_name := input ->> 'name';
    width := (input ->> 'width')::int;
    node := mapping -> input_name;
    IF node IS NULL THEN
      wanted := ARRAY[input_name];
    ELSIF jsonb_typeof(node) = 'string' THEN
      wanted := ARRAY[node #>> '{}'];
    ELSIF jsonb_typeof(node) = 'array' AND NOT EXISTS (SELECT FROM jsonb_array_elements(node) e WHERE jsonb_typeof(e.value) <> 'string') THEN
      wanted := ARRAY(SELECT e.value FROM jsonb_array_elements_text(node) WITH ORDINALITY e(value, n) ORDER BY e.n);
    ELSE
      RAISE EXCEPTION 'The mapping of input % must be a column name or a list of column names; got %.', quote_literal(input_name), node
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(wanted) <> width THEN
      RAISE EXCEPTION 'Model % input % % takes % value(s) per row, but %. Map it with features => ''{"%": [%]}''. Columns: %.',
        quote_literal(model_name), input_name, format('%s[%s]', input ->> 'type', (SELECT string_agg(d, ',') FROM jsonb_array_elements_text(input -> 'shape') d)),
        width,
        CASE WHEN node IS NOT NULL THEN format('the mapping gives %s column(s)', cardinality(wanted)) ELSE format('the table has no column %L', input_name) END,
        input_name, CASE WHEN width = 1 THEN '"column"' ELSE '"column1", "column2", ...' END, mad.describe_columns(source)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    resolved_columns := '[]';
    FOREACH wanted_column IN ARRAY wanted LOOP
      SELECT * INTO hit FROM mad.find_column(source, wanted_column);
      IF hit.name IS NULL THEN
        RAISE EXCEPTION 'Model % input % is mapped to column %, which % does not have. Columns: %.',
          quote_literal(model_name), quote_literal(input_name), quote_literal(wanted_column), source, mad.describe_columns(source)
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF NOT mad.column_feeds(hit.type, input ->> 'type') THEN
        RAISE EXCEPTION 'Column % of % is %, which cannot feed model % input % (%).',
          quote_ident(hit.name), source, hit.type_name, quote_literal(model_name), quote_literal(input_name), input ->> 'type'
          USING ERRCODE = 'invalid_parameter_value', HINT = 'Map the input to a numeric, boolean or text column, or to a view that converts it.';
      END IF;
      resolved_columns := resolved_columns || to_jsonb(hit.name);
      slots := slots || to_jsonb(hit.name);
    END LOOP;
    resolved := resolved || jsonb_build_object(input_name, resolved_columns);
  END LOOP;

  SELECT string_agg(quote_literal(k), ', ') INTO unknown FROM jsonb_object_keys(coalesce(mapping, '{}')) k
  WHERE NOT EXISTS (SELECT FROM jsonb_array_elements(signature -> 'inputs') i WHERE i.value ->> 'name' = k);
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION 'The mapping names %, which model % does not take; its inputs: %.', unknown, quote_literal(model_name),
      (SELECT string_agg(i.value ->> 'name', ', ') FROM jsonb_array_elements(signature -> 'inputs') i)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN jsonb_build_object('mapping', resolved, 'slots', slots);
END
$$;

-- Binds a model reference to a source table and creates mad_out.<name>: the key columns (typed as in the source),
-- one column per decoded output, model_version, scored_at and error, keyed on the key. The caller must be allowed
-- to SELECT from the source. Returns the output table.
CREATE FUNCTION mad.create_prediction_table(name text, source regclass, key text[], model text, features jsonb DEFAULT NULL)
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
    RAISE EXCEPTION 'Prediction table % already exists; refresh it with: SELECT mad.refresh(%L)', quote_literal(table_name), table_name
      USING ERRCODE = 'unique_violation';
  END IF;

  model_version := mad.resolve_reference(create_prediction_table.model);
  SELECT * INTO found_version FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version;
  PERFORM mad.ready_signature(model_name, model_version);

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

  INSERT INTO mad.prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns)
  VALUES (table_name, create_prediction_table.source, key_names, key_types, create_prediction_table.model, mapped -> 'mapping',
          ARRAY(SELECT jsonb_array_elements_text(mapped -> 'slots')), output_columns)
  RETURNING * INTO binding;
  EXECUTE format('CREATE TABLE mad_out.%I (%s, PRIMARY KEY (%s))', table_name, array_to_string(definitions, ', '), mad.key_list(binding, '%I'));
  EXECUTE format('GRANT SELECT ON mad_out.%I TO mad_admin, mad_user', table_name);
  RETURN format('mad_out.%I', table_name)::regclass;
END
$$;

-- source is a regclass: a name given as text is resolved with the caller's search_path, in the caller's statement.

-- Refresh jobs and their tasks.

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
  created_by text NOT NULL DEFAULT mad.caller_role(),
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
  sample text := '';
  step bigint;
  bound record;
  stale record;
  previous text[];
  ordinal int := 0;
  missing text;
BEGIN
  PERFORM mad.require_binding_owner(binding, 'refresh ' || quote_ident(binding.name));
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

  EXECUTE format('SELECT count(*) FROM %s', mad.qualified_name(binding.source)) INTO total;
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
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = binding.source) IN ('r', 'm') THEN
      sample := format(' TABLESAMPLE SYSTEM (%s)', least(100, round(100.0 * task_count * 1000 / total, 4)));
    END IF;
    step := NULL;
    FOR bound IN EXECUTE format(
      'SELECT b FROM (SELECT ARRAY[%s] AS b, row_number() OVER (ORDER BY %s) AS rn, count(*) OVER () AS c FROM %s%s WHERE %s) s ' ||
      'WHERE rn %% greatest(1, c / %s) = 0 AND rn < c ORDER BY rn',
      mad.key_list(binding, '%I::text'), mad.key_list(binding, '%I'), mad.qualified_name(binding.source), sample,
      mad.key_list(binding, '%I IS NOT NULL', ' AND '), task_count)
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
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'run refresh tasks');
  SELECT * INTO task FROM mad.tasks t WHERE t.id = task_plan.task_id;
  SELECT * INTO job FROM mad.jobs j WHERE j.id = task.job_id;
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = job.prediction_table;
  SELECT * INTO reads FROM mad.feature_reads(binding);

  keys := mad.key_list(binding, '%I');
  IF task.lo IS NOT NULL THEN
    conditions := conditions || format('ROW(%s) >= ROW(%s)', keys, mad.key_values(binding, task.lo));
  END IF;
  IF task.hi IS NOT NULL THEN
    conditions := conditions || format('ROW(%s) < ROW(%s)', keys, mad.key_values(binding, task.hi));
  END IF;

  RETURN jsonb_build_object(
    'query', format('SELECT %s FROM %s%s', array_to_string(ARRAY[keys] || reads.expressions, ', '), mad.qualified_name(binding.source),
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
-- when the lease was lost it raises (SQLSTATE 55M02, lease lost), and the rows roll back with it. Returns the job's state.
CREATE FUNCTION mad.complete_task(task_id bigint, lease_token uuid, rows_done bigint, rows_failed bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  job mad.jobs;
  binding mad.prediction_tables;
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

-- EXECUTE grants are the gate (docs/SECURITY.md): nobody may call what is not granted here.
REVOKE ALL ON FUNCTION mad.claim_task(text, interval), mad.column_feeds(regtype, text),
  mad.complete_task(bigint, uuid, bigint, bigint), mad.create_prediction_table(text, regclass, text[], text, jsonb),
  mad.describe_columns(regclass), mad.fail_task(bigint, uuid, text, boolean),
  mad.feature_reads(mad.prediction_tables), mad.find_column(regclass, text),
  mad.key_list(mad.prediction_tables, text, text), mad.key_values(mad.prediction_tables, text[]),
  mad.map_features(regclass, text, jsonb, jsonb), mad.output_sql_type(text), mad.qualified_name(regclass),
  mad.ready_signature(text, integer), mad.refresh(text), mad.renew_task(bigint, uuid, interval),
  mad.require_binding_owner(mad.prediction_tables, text), mad.require_prediction_table(text),
  mad.require_source_access(regclass, text), mad.require_trigger_privilege(regclass, text),
  mad.resolve_reference(text), mad.task_plan(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.create_prediction_table(text, regclass, text[], text, jsonb) TO mad_admin;
GRANT EXECUTE ON FUNCTION mad.refresh(text) TO mad_admin, mad_user;
GRANT EXECUTE ON FUNCTION mad.claim_task(text, interval), mad.complete_task(bigint, uuid, bigint, bigint),
  mad.fail_task(bigint, uuid, text, boolean), mad.renew_task(bigint, uuid, interval), mad.task_plan(bigint) TO mad_sidecar;

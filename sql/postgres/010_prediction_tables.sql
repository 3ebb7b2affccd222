-- Prediction tables: a model reference bound to a source table, scored into a typed table mad_out.<name> that
-- analysts join. The binding (key, feature mapping, decoded columns) is resolved and checked here, in SQL, once: the
-- CLI calls this function too, so SQL users and `mad tables create` get the same rules and the same messages.
-- Every user identifier reaches dynamic SQL through regclass or format('%I'); values through format('%L').

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
  created_by text NOT NULL DEFAULT session_user,
  created_at timestamptz NOT NULL DEFAULT now(),
  refreshed_at timestamptz,
  refreshed_version int,
  rows_scored bigint,
  rows_failed bigint,
  last_job bigint
);

GRANT SELECT ON mad.prediction_tables TO mad_admin, mad_user, mad_sidecar;

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
  IF NOT (pg_catalog.pg_has_role(session_user, 'mad_user', 'MEMBER') OR pg_catalog.pg_has_role(session_user, 'mad_admin', 'MEMBER')) THEN
    RAISE EXCEPTION 'permission denied to %: role % needs role mad_user or mad_admin', action, quote_ident(session_user::text)
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('An administrator can run: GRANT mad_user TO %I;', session_user);
  END IF;
  IF NOT pg_catalog.has_table_privilege(session_user, source, 'SELECT') THEN
    RAISE EXCEPTION 'permission denied to %: role % may not SELECT from %', action, quote_ident(session_user::text), source
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('The owner of the table can run: GRANT SELECT ON %s TO %I;', source, session_user);
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

  EXECUTE format('CREATE TABLE mad_out.%I (%s, PRIMARY KEY (%s))', table_name, array_to_string(definitions, ', '),
                 (SELECT string_agg(format('%I', k), ', ' ORDER BY n) FROM unnest(key_names) WITH ORDINALITY u(k, n)));
  EXECUTE format('GRANT SELECT ON mad_out.%I TO mad_admin, mad_user', table_name);

  INSERT INTO mad.prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns)
  VALUES (table_name, create_prediction_table.source, key_names, key_types, create_prediction_table.model, mapped -> 'mapping',
          ARRAY(SELECT jsonb_array_elements_text(mapped -> 'slots')), output_columns);
  RETURN format('mad_out.%I', table_name)::regclass;
END
$$;

-- source is a regclass: a name given as text is resolved with the caller's search_path, in the caller's statement.
REVOKE ALL ON FUNCTION mad.output_sql_type(text), mad.column_feeds(regtype, text), mad.require_source_access(regclass, text),
  mad.describe_columns(regclass), mad.find_column(regclass, text), mad.resolve_reference(text), mad.ready_signature(text, int),
  mad.map_features(regclass, text, jsonb, jsonb), mad.create_prediction_table(text, regclass, text[], text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.output_sql_type(text), mad.column_feeds(regtype, text), mad.require_source_access(regclass, text),
  mad.describe_columns(regclass), mad.find_column(regclass, text), mad.resolve_reference(text), mad.ready_signature(text, int),
  mad.map_features(regclass, text, jsonb, jsonb), mad.create_prediction_table(text, regclass, text[], text, jsonb)
  TO mad_admin, mad_user, mad_sidecar;

-- Tensors in tables (issue 14, docs/TENSORS.md): a row can hold a model input's whole tensor in one array column,
-- and a tensor output lands in an array column of its element type.
--
-- * An input is fed from one column of an array type (real[], double precision[], smallint[], integer[], bigint[],
--   numeric[], boolean[], text[], varchar[]) or bytea (its bytes as numbers 0-255: uint8 images) when the mapping
--   gives it exactly one such column (or its own name is one). Any other mapping feeds it from scalar columns, one
--   per value, as before. The array may be flat (the row's element count) or multi-dimensional (the row's
--   dimensions, sizes of 1 left out or added); a row whose array does not fit gets its own error. An input with a
--   dynamic dimension after the batch (token ids [N, T]) is fed only from an array column; rows of different
--   lengths are scored in groups of one length (never padded).
-- * mad.map_features returns, for an array-fed input, the one column as its one slot (prediction_tables.feature_columns
--   keeps "one entry per scalar slot, one per array-fed input", in input order); the sidecar tells the two apart by
--   the read type of the column (mad.feature_reads: an array type or bytea).
-- * mad.feature_reads reads an array column in its own type (numeric[] as double precision[], other text-like
--   arrays as text[]); an array holding a NULL element is that row's error (the sidecar reads the array's binary
--   form itself).
-- * mad.output_sql_type knows the array columns of every element type: double precision[], bigint[], boolean[],
--   text[] beside real[]. task_plan, stream_plan and create_prediction_table are unchanged: they call these.

-- The SQL type of a decoded output column (ModelAsData.Core.Onnx.ColumnType in its snake_case JSON form).
CREATE OR REPLACE FUNCTION mad.output_sql_type(column_type text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE column_type WHEN 'real' THEN 'real' WHEN 'integer' THEN 'bigint' WHEN 'text' THEN 'text'
                          WHEN 'real_array' THEN 'real[]' WHEN 'double_array' THEN 'double precision[]'
                          WHEN 'integer_array' THEN 'bigint[]' WHEN 'boolean_array' THEN 'boolean[]'
                          WHEN 'text_array' THEN 'text[]' END;
$$;

-- Whether a column of this type holds a whole tensor per row: an array of a type mad.column_feeds knows, or bytea.
CREATE FUNCTION mad.is_tensor_column(column_type regtype) RETURNS boolean
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT column_type = 'bytea'::regtype
      OR EXISTS (SELECT FROM pg_catalog.pg_type t WHERE t.oid = column_type AND t.typcategory = 'A' AND t.typelem <> 0);
$$;

-- Whether a tensor column of this type can feed a model input of this element type: its elements as
-- mad.column_feeds takes a scalar (text converted element by element), bytea's bytes as numbers.
CREATE FUNCTION mad.tensor_column_feeds(column_type regtype, input_type text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE
    WHEN column_type = 'bytea'::regtype THEN input_type NOT IN ('string', 'bool')
    ELSE coalesce((SELECT mad.column_feeds(t.typelem::regtype, input_type) FROM pg_catalog.pg_type t WHERE t.oid = column_type), false)
  END;
$$;

-- The dimensions of one row of an input as messages write them: '[1,28,28] (784 values)', '[-1] (any length)'.
CREATE FUNCTION mad.describe_row(input jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT format('%s[%s]', input ->> 'type',
                (SELECT string_agg(d, ',' ORDER BY n) FROM jsonb_array_elements_text(input -> 'shape') WITH ORDINALITY s(d, n)));
$$;

-- As in 004, and an input fed from one tensor column (an array or bytea) as a whole: its one column is its one slot.
-- An input whose row size is dynamic (width 0) must be so fed.
CREATE OR REPLACE FUNCTION mad.map_features(source regclass, model_name text, signature jsonb, mapping jsonb) RETURNS jsonb
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

    -- 016: one tensor column feeds the whole input, whatever its width.
    IF cardinality(wanted) = 1 THEN
      SELECT * INTO hit FROM mad.find_column(source, wanted[1]);
      IF hit.name IS NOT NULL AND mad.is_tensor_column(hit.type) THEN
        IF NOT mad.tensor_column_feeds(hit.type, input ->> 'type') THEN
          RAISE EXCEPTION 'Column % of % is %, which cannot feed model % input % (%).',
            quote_ident(hit.name), source, hit.type_name, quote_literal(model_name), quote_literal(input_name), mad.describe_row(input)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A tensor input is fed from an array of numbers, booleans or text (real[], bigint[], ...), or bytea for bytes.';
        END IF;
        resolved := resolved || jsonb_build_object(input_name, jsonb_build_array(hit.name));
        slots := slots || to_jsonb(hit.name);
        CONTINUE;
      END IF;
    END IF;
    IF width = 0 THEN
      RAISE EXCEPTION 'Model % input % % has a dynamic size per row: it is fed from one array column per row (%), not from %.',
        quote_literal(model_name), input_name, mad.describe_row(input),
        'real[], bigint[], ... or bytea',
        CASE WHEN node IS NOT NULL THEN format('%s column(s)', cardinality(wanted)) ELSE format('a column %L, which the table does not have as an array', input_name) END
        USING ERRCODE = 'invalid_parameter_value',
              HINT = format('Map it with features => ''{"%s": "column"}'' to an array column. Columns: %s.', input_name, mad.describe_columns(source));
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

-- As in 004, and tensor columns read in their own array type (or bytea).
CREATE OR REPLACE FUNCTION mad.feature_reads(binding mad.prediction_tables, OUT features text[], OUT expressions text[], OUT read_types text[], OUT slots int[])
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  feature text;
  hit record;
  element regtype;
BEGIN
  features := ARRAY(SELECT DISTINCT ON (c) c FROM unnest(binding.feature_columns) WITH ORDINALITY u(c, n) ORDER BY c, n);
  features := ARRAY(SELECT c FROM unnest(features) c ORDER BY array_position(binding.feature_columns, c));
  expressions := '{}';
  read_types := '{}';
  FOREACH feature IN ARRAY features LOOP
    SELECT * INTO hit FROM mad.find_column(binding.source, feature);
    IF hit.type = 'bytea'::regtype THEN
      expressions := expressions || format('%I', feature);
      read_types := read_types || 'bytea'::text;
    ELSIF mad.is_tensor_column(hit.type) THEN
      SELECT t.typelem::regtype INTO element FROM pg_catalog.pg_type t WHERE t.oid = hit.type;
      IF element NOT IN ('real'::regtype, 'double precision'::regtype, 'smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'boolean'::regtype) THEN
        element := CASE WHEN element = 'numeric'::regtype THEN 'double precision'::regtype ELSE 'text'::regtype END;
      END IF;
      -- Starts with the column: stream_plan qualifies every expression as s.<expression>.
      expressions := expressions || format('%I::%s[]', feature, element);
      read_types := read_types || (element::text || '[]');
    ELSIF hit.type IN ('real'::regtype, 'double precision'::regtype, 'smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'boolean'::regtype) THEN
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

REVOKE ALL ON FUNCTION mad.is_tensor_column(regtype), mad.tensor_column_feeds(regtype, text), mad.describe_row(jsonb) FROM PUBLIC;

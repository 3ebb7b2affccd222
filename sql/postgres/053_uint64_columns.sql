-- uint64 outputs bind to prediction tables, and 64-bit integers read from numeric columns keep every digit
-- (issue 14, docs/TENSORS.md).
--
-- * A uint64 output decodes into ColumnType.Uint64 ('uint64': one value) or Uint64Array ('uint64_array': a tensor per
--   row). PostgreSQL has no unsigned 64-bit type and bigint stops at 2^63 - 1, so they are numeric(20,0) (20 digits
--   hold 18446744073709551615; exact, unlike double precision past 2^53) and numeric[] (an array cannot carry a
--   typmod per element; every element the sidecar writes is whole). mad.output_sql_type is 016's with the two added.
-- * mad.feature_reads read a numeric column as double precision (016), which rounds a value past 2^53: a uint64
--   output stored here could not feed a uint64 input again. Now a numeric column, or numeric[], is read as text when
--   a version of the table's model has an int64 or uint64 input: the sidecar parses the text exactly (a text that is
--   not a whole number falls back to a double, as before). Models without such inputs keep the binary double read,
--   so tabular models lose nothing. Otherwise 016's function unchanged; the changes are marked 053.

CREATE OR REPLACE FUNCTION mad.output_sql_type(column_type text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT CASE column_type WHEN 'real' THEN 'real' WHEN 'integer' THEN 'bigint' WHEN 'text' THEN 'text'
                          WHEN 'real_array' THEN 'real[]' WHEN 'double_array' THEN 'double precision[]'
                          WHEN 'integer_array' THEN 'bigint[]' WHEN 'boolean_array' THEN 'boolean[]'
                          WHEN 'text_array' THEN 'text[]'
                          WHEN 'uint64' THEN 'numeric(20,0)' WHEN 'uint64_array' THEN 'numeric[]' END;  -- 053
$$;

CREATE OR REPLACE FUNCTION mad.feature_reads(binding mad.prediction_tables, OUT features text[], OUT expressions text[], OUT read_types text[], OUT slots int[])
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  feature text;
  hit record;
  element regtype;
  -- 053: whether numeric columns are read as text, for inputs that a double would round.
  exact_numeric boolean := EXISTS (SELECT FROM mad.model_versions v CROSS JOIN LATERAL jsonb_array_elements(v.signature -> 'inputs') i
                                   WHERE v.model = split_part(binding.model, '@', 1) AND i.value ->> 'type' IN ('int64', 'uint64'));
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
        element := CASE WHEN element = 'numeric'::regtype AND NOT exact_numeric THEN 'double precision'::regtype ELSE 'text'::regtype END;  -- 053
      END IF;
      -- Starts with the column: stream_plan qualifies every expression as s.<expression>.
      expressions := expressions || format('%I::%s[]', feature, element);
      read_types := read_types || (element::text || '[]');
    ELSIF hit.type IN ('real'::regtype, 'double precision'::regtype, 'smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'boolean'::regtype) THEN
      expressions := expressions || format('%I', feature);
      read_types := read_types || hit.type::text;
    ELSIF hit.type = 'numeric'::regtype AND NOT exact_numeric THEN  -- 053
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

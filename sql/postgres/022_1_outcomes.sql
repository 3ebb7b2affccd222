-- Outcomes: true labels bound to a prediction table, and the history of what was served (issue 17, part 1).
--
-- * mad.set_outcomes binds an outcome source (a table or view the caller can read) to a prediction table: its key
--   columns, its label column and the column saying when the label was observed. The binding records names only:
--   no definer function ever reads the source. It is read by mad.performance, which runs as its caller, so grants,
--   column privileges and row-level security on the source apply to whoever asks (DESIGN.md "Security model").
-- * A refresh replaces every row of mad_out.<name>, and a stream overwrites a key's row: the prediction that was served
--   when the label was observed would be gone. mad_history.<name> keeps every prediction ever written for a table with
--   outcomes (key, version, arm, outputs, scored_at): filled when a refresh job finishes (the swapped-in table is
--   copied, in the transaction of the swap) and by statement triggers on mad_out.<name> when a stream writes. History
--   starts at mad.set_outcomes with a copy of the current rows.
-- * A label joins the prediction in force when it was observed: the latest history row of its key scored at or before
--   observed_at (a point-in-time join: a prediction made after the label was known is never graded by it).

CREATE SCHEMA IF NOT EXISTS mad_history;
REVOKE ALL ON SCHEMA mad_history FROM PUBLIC;
-- Nobody reads mad_history directly: mad.served_predictions (a definer) hands out the rows of tables the caller may
-- read in mad_out, so a history is exactly as visible as its predictions.

CREATE TABLE mad.outcomes (
  prediction_table text PRIMARY KEY REFERENCES mad.prediction_tables (name) ON DELETE CASCADE,
  source regclass NOT NULL,
  key_columns text[] NOT NULL CHECK (cardinality(key_columns) > 0),
  label_column text NOT NULL,
  observed_at_column text NOT NULL,
  created_by text NOT NULL DEFAULT mad.caller_role(),
  created_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON mad.outcomes TO mad_admin, mad_user;

-- The key's canonical text (mad.key_text) of a row alias with the given key columns, as an SQL expression.
CREATE FUNCTION mad.key_text_sql(row_alias text, key_columns text[]) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = mad, pg_temp AS $$
  SELECT 'mad.key_text(VARIADIC ARRAY[' || string_agg(format('%I.%I::text', row_alias, k), ', ' ORDER BY n) || '])'
  FROM unnest(key_columns) WITH ORDINALITY u(k, n);
$$;

-- The statement that copies rows of mad_out.<name> (or of a trigger's transition table, which only the trigger
-- function's own EXECUTE can see) into mad_history.<name>: outputs are the row's columns other than the key and the
-- bookkeeping; a row that failed to score served nothing and is not kept.
CREATE FUNCTION mad.history_insert(binding mad.prediction_tables, from_relation text) RETURNS text
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT format(
    'INSERT INTO mad_history.%I (key, version, arm, outputs, scored_at) '
    'SELECT %s, o.model_version, o.arm, pg_catalog.to_jsonb(o) - %L::text[], o.scored_at FROM %s o WHERE o.error IS NULL '
    'ON CONFLICT DO NOTHING',
    binding.name, mad.key_text_sql('o', binding.key_columns),
    binding.key_columns || ARRAY['model_version', 'arm', 'scored_at', 'error'], from_relation);
$$;

-- A stream (or any writer) changed rows of mad_out.<name>: they join the history. Statement level, so one INSERT per
-- batch the sidecar writes.
CREATE FUNCTION mad.history_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
BEGIN
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = TG_TABLE_NAME;
  IF FOUND AND EXISTS (SELECT FROM mad.outcomes o WHERE o.prediction_table = binding.name) THEN
    EXECUTE mad.history_insert(binding, 'new_rows');
  END IF;
  RETURN NULL;
END
$$;

-- Puts the history triggers on the current mad_out.<name> (a refresh swaps in a new table, without them).
CREATE FUNCTION mad.attach_history(binding mad.prediction_tables) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  IF pg_catalog.to_regclass(format('mad_out.%I', binding.name)) IS NULL THEN
    RETURN;
  END IF;
  EXECUTE format('CREATE OR REPLACE TRIGGER mad_history_insert AFTER INSERT ON mad_out.%I REFERENCING NEW TABLE AS new_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION mad.history_rows()', binding.name);
  EXECUTE format('CREATE OR REPLACE TRIGGER mad_history_update AFTER UPDATE ON mad_out.%I REFERENCING NEW TABLE AS new_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION mad.history_rows()', binding.name);
END
$$;

-- A refresh finished: its rows are what is served from now on. Runs in the transaction of the swap.
CREATE FUNCTION mad.history_after_refresh() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
BEGIN
  SELECT p.* INTO binding FROM mad.prediction_tables p JOIN mad.outcomes o ON o.prediction_table = p.name
  WHERE p.name = NEW.prediction_table;
  IF FOUND THEN
    EXECUTE mad.history_insert(binding, format('mad_out.%I', binding.name));
    PERFORM mad.attach_history(binding);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER history_after_refresh AFTER UPDATE OF state ON mad.jobs
  FOR EACH ROW WHEN (NEW.state = 'done' AND OLD.state IS DISTINCT FROM 'done') EXECUTE FUNCTION mad.history_after_refresh();

-- Binds an outcome source to a prediction table (again: replaces the binding). Reads only the catalogs: the caller
-- must own the prediction table and be able to read the source's key, label and observed_at columns now; every
-- later read of the source is its reader's own (mad.performance).
CREATE FUNCTION mad.set_outcomes(prediction_table text, source regclass, key text[], label text, observed_at text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  column_name text;
  observed_type regtype;
BEGIN
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

-- The predictions served for a table, from its history, to a caller who may read mad_out.<name> (the owner, those it
-- granted the table to, mad_admin). Reads only mad's own tables.
CREATE FUNCTION mad.served_predictions(table_name text, as_of timestamptz DEFAULT NULL)
RETURNS TABLE (key text, version int, arm text, outputs jsonb, scored_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(table_name);
  out_table regclass := pg_catalog.to_regclass(format('mad_out.%I', binding.name));
BEGIN
  IF out_table IS NULL OR NOT pg_catalog.has_table_privilege(mad.caller_role(), out_table, 'SELECT') THEN
    RAISE EXCEPTION 'permission denied to read the predictions of %: role % may not SELECT from mad_out.%I', quote_literal(binding.name), quote_ident(mad.caller_role()), binding.name
      USING ERRCODE = 'insufficient_privilege', HINT = format('Its owner can run: GRANT SELECT ON mad_out.%I TO %I;', binding.name, mad.caller_role());
  END IF;
  IF NOT EXISTS (SELECT FROM mad.outcomes o WHERE o.prediction_table = binding.name) THEN
    RAISE EXCEPTION 'Prediction table % has no outcomes bound.', quote_literal(binding.name)
      USING ERRCODE = 'no_data_found',
            HINT = format('Bind them: SELECT mad.set_outcomes(%L, source => ..., key => %L, label => ..., observed_at => ...);', binding.name, binding.key_columns);
  END IF;
  RETURN QUERY EXECUTE format('SELECT h.key, h.version, h.arm, h.outputs, h.scored_at FROM mad_history.%I h WHERE $1 IS NULL OR h.scored_at <= $1', binding.name)
    USING as_of;
END
$$;

REVOKE ALL ON FUNCTION mad.key_text_sql(text, text[]), mad.history_insert(mad.prediction_tables, text), mad.history_rows(),
  mad.attach_history(mad.prediction_tables), mad.history_after_refresh(), mad.set_outcomes(text, regclass, text[], text, text),
  mad.served_predictions(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.set_outcomes(text, regclass, text[], text, text), mad.served_predictions(text, timestamptz) TO mad_admin, mad_user;

-- The shadow's storage loses its index on job (issue 15, the shadow's cost): no query can use it. The storage holds
-- the last done job's rows, the rows streamed since (job NULL) and a running job's; the view, mad.shadow_agreement
-- and mad.deployment_rows read `job IS NULL OR job = last_job`, which is nearly every row, and the swap's
-- `DELETE ... WHERE job IS DISTINCT FROM $1` is not indexable. Each refreshed shadow row paid for keeping the index
-- (with the key index, it doubled the COPY's cost on the server). The key index stays: a streamed batch deletes its
-- keys' rows by it.

-- 025's mad.ensure_shadow, changed (052): the storage is created without the index on job.
CREATE OR REPLACE FUNCTION mad.ensure_shadow(binding mad.prediction_tables) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  outputs text := (SELECT string_agg(format('%I %s', c.value ->> 'name', mad.output_sql_type(c.value ->> 'type')), ', ' ORDER BY n)
                   FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n));
  view_name text := binding.name || '__shadow';
BEGIN
  IF length(view_name) > 63 THEN
    RAISE EXCEPTION 'Prediction table % has a name too long for its shadow table mad_out.% (63 bytes at most).', quote_literal(binding.name), view_name
      USING ERRCODE = 'name_too_long';
  END IF;
  IF pg_catalog.to_regclass(format('mad_shadow.%I', binding.name)) IS NULL THEN
    EXECUTE format('CREATE TABLE mad_shadow.%I (%s, shadow_version int NOT NULL, %s, served_version int, scored_at timestamptz NOT NULL, error text, job bigint)',
                   binding.name, mad.key_list(binding, '%I %2$s'), outputs);
    PERFORM mad.upgrade_shadow_storage(binding);
  END IF;
  IF pg_catalog.to_regclass(format('mad_out.%I', view_name)) IS NULL THEN
    PERFORM mad.create_shadow_view(binding);
  END IF;
END
$$;

-- The storages 020 and 025 made: their index on job alone goes.
DO $$
DECLARE
  index_name regclass;
BEGIN
  FOR index_name IN
    SELECT i.indexrelid::regclass
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
    WHERE n.nspname = 'mad_shadow' AND i.indnatts = 1 AND a.attname = 'job'
  LOOP
    EXECUTE format('DROP INDEX %s', index_name);
  END LOOP;
END
$$;

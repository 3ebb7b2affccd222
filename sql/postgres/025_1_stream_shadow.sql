-- Shadow scoring on streams (issue 15, docs/DEPLOYMENTS.md): a streamed batch under a deployment with a shadow scores
-- the keys the shadow samples with the shadow version too, and writes them to the same mad_shadow.<name> storage as a
-- refresh does, in the batch's own transaction behind a savepoint. A shadow that cannot load, score or be written
-- never fails the batch: its rows are dropped and why is recorded in mad.prediction_tables.shadow_error.
--
-- How streamed rows and refreshed rows agree (the same rule as the served table): the storage holds the rows of the
-- last done job (job = prediction_tables.last_job) and the rows streamed since (job IS NULL). A streamed batch first
-- deletes the visible shadow rows of every key it claimed (so a key's shadow row always belongs to its current served
-- row, and a deleted key loses both), then inserts the sampled keys' new rows. A refresh's swap deletes every row
-- but its own job's, streamed ones included: the keys streamed during the refresh are queued again by the swap (006's
-- mad.stream_during_refresh), so they are streamed, and shadowed, again. The view shows job = last_job OR job IS
-- NULL. The batch's shadow write follows its upsert into mad_out.<name>, whose lock the swap waits for, so a swap
-- never deletes a streamed row before it commits.

-- Why the last streamed batch's shadow did not score (NULL: it did), as stream_error is for the batch itself;
-- mad_admin and the sidecars read it (it may quote a source value), the report shows it.
-- (008 granted mad_user the columns of prediction_tables one by one: it gets no grant on these.)
ALTER TABLE mad.prediction_tables ADD COLUMN shadow_error text, ADD COLUMN shadow_error_at timestamptz;

-- The shadow view of a binding: the last done job's rows and the rows streamed since, for readers of the served table.
CREATE FUNCTION mad.create_shadow_view(binding mad.prediction_tables) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
DECLARE
  output_names text := (SELECT string_agg(format('s.%I', c.value ->> 'name'), ', ' ORDER BY n)
                        FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n));
BEGIN
  EXECUTE format('CREATE OR REPLACE VIEW mad_out.%I WITH (security_barrier) AS SELECT %s, s.shadow_version, %s, s.served_version, s.scored_at, s.error '
                 'FROM mad_shadow.%I s WHERE (s.job IS NULL OR s.job = (SELECT p.last_job FROM mad.prediction_tables p WHERE p.name = %L)) AND mad.require_shadow_reader(%L)',
                 binding.name || '__shadow', mad.key_list(binding, 's.%I'), output_names, binding.name, binding.name, binding.name);
  -- Any mad role may try; mad.require_shadow_reader lets through only the served table's readers.
  EXECUTE format('GRANT SELECT ON mad_out.%I TO mad_admin, mad_user', binding.name || '__shadow');
END
$$;

-- What a storage created by 020 lacks for streaming: job may be NULL (streamed), an index on the key (a batch deletes
-- its keys' rows), and the sidecar's DELETE.
CREATE FUNCTION mad.upgrade_shadow_storage(binding mad.prediction_tables) RETURNS void
LANGUAGE plpgsql SET search_path = mad, pg_temp AS $$
BEGIN
  EXECUTE format('ALTER TABLE mad_shadow.%I ALTER COLUMN job DROP NOT NULL', binding.name);
  EXECUTE format('CREATE INDEX ON mad_shadow.%I (%s)', binding.name, mad.key_list(binding, '%I'));
  EXECUTE format('GRANT SELECT, INSERT, DELETE ON mad_shadow.%I TO mad_sidecar', binding.name);
END
$$;

-- 020's mad.ensure_shadow, changed (025): the storage is created in the shape above, the view by mad.create_shadow_view.
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
    EXECUTE format('CREATE INDEX ON mad_shadow.%I (job)', binding.name);
    PERFORM mad.upgrade_shadow_storage(binding);
  END IF;
  IF pg_catalog.to_regclass(format('mad_out.%I', view_name)) IS NULL THEN
    PERFORM mad.create_shadow_view(binding);
  END IF;
END
$$;

-- The storages and views 020 made.
SELECT mad.upgrade_shadow_storage(p), mad.create_shadow_view(p)
FROM mad.prediction_tables p WHERE pg_catalog.to_regclass(format('mad_shadow.%I', p.name)) IS NOT NULL;

-- 020's swap trigger, changed (025): the streamed rows (job NULL) go with the older jobs' rows.
CREATE OR REPLACE FUNCTION mad.job_shadow_done() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
BEGIN
  IF pg_catalog.to_regclass(format('mad_shadow.%I', NEW.prediction_table)) IS NOT NULL THEN
    EXECUTE format('DELETE FROM mad_shadow.%I s WHERE s.job IS DISTINCT FROM $1', NEW.prediction_table) USING NEW.id;
  END IF;
  RETURN NULL;
END
$$;

-- The shadow a batch of a watched table scores by, read in the batch's transaction as the canary is (019): its
-- version, percent and the deployment's seed; no row without one. mad_sidecar only.
CREATE FUNCTION mad.stream_shadow(table_name text) RETURNS TABLE (shadow_version int, shadow_percent double precision, seed bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  SELECT d.shadow_version, d.shadow_percent, d.seed
  FROM mad.prediction_tables p
  JOIN mad.deployments d ON d.model = split_part(p.model, '@', 1) AND d.alias = mad.reference_alias(p.model)
  WHERE p.name = stream_shadow.table_name AND d.shadow_version IS NOT NULL;
$$;

-- How a watched table's batches write their shadow rows, when its deployment has a shadow (NULL otherwise): the
-- version and its sha256, the storage (created here if no refresh made it yet), and two statements:
--   delete  the visible shadow rows of the claimed keys (mad.stream_keys, set by mad.stream_claim);
--   insert  $1..$k the sampled keys as text, then each output column (array-valued ones as text literals), the
--           errors, the served versions (int[]), and $last the shadow version; the rows are streamed (job NULL).
CREATE FUNCTION mad.stream_shadow_plan(table_name text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  shadow record;
  key_count int;
  output_types text[];
  parameters text[];
  selected text[];
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'drain the outbox');
  binding := mad.require_prediction_table(table_name);
  SELECT * INTO shadow FROM mad.stream_shadow(binding.name);
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  PERFORM mad.ensure_shadow(binding);
  key_count := cardinality(binding.key_columns);
  output_types := ARRAY(SELECT mad.output_sql_type(c.value ->> 'type') FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n) ORDER BY n);
  parameters := ARRAY[mad.key_list(binding, '$%3$s::text[]')]
             || ARRAY(SELECT format('$%s::%s', key_count + n, CASE WHEN t LIKE '%[]' THEN 'text[]' ELSE t || '[]' END)
                      FROM unnest(output_types) WITH ORDINALITY u(t, n))
             || format('$%s::text[]', key_count + cardinality(output_types) + 1)
             || format('$%s::int[]', key_count + cardinality(output_types) + 2);
  selected := ARRAY[mad.key_list(binding, 'u.k%3$s::%2$s')]
           || format('$%s::int', key_count + cardinality(output_types) + 3)
           || ARRAY(SELECT CASE WHEN t LIKE '%[]' THEN format('u.c%s::%s', n, t) ELSE format('u.c%s', n) END
                    FROM unnest(output_types) WITH ORDINALITY u(t, n))
           || 'u.v'::text || 'pg_catalog.now()'::text || 'u.error'::text || 'NULL::bigint'::text;
  RETURN jsonb_build_object(
    'version', shadow.shadow_version,
    'sha256', (SELECT v.sha256 FROM mad.model_versions v WHERE v.model = split_part(binding.model, '@', 1) AND v.version = shadow.shadow_version),
    'delete', format('DELETE FROM mad_shadow.%1$I d WHERE d.ctid = ANY (ARRAY(SELECT s.mad_row FROM jsonb_array_elements(pg_catalog.current_setting(''mad.stream_keys'')::jsonb) k '
                     'CROSS JOIN LATERAL (SELECT s.ctid AS mad_row FROM mad_shadow.%1$I s WHERE %2$s '
                     'AND (s.job IS NULL OR s.job = (SELECT p.last_job FROM mad.prediction_tables p WHERE p.name = %3$L)) OFFSET 0) s))',
                     binding.name, mad.key_list(binding, 's.%1$I = (k.value ->> %4$s)::%2$s', ' AND '), binding.name),
    'insert', format('INSERT INTO mad_shadow.%I (%s) SELECT %s FROM unnest(%s) AS u(%s)',
                     binding.name,
                     array_to_string(ARRAY[mad.key_list(binding, '%I')] || 'shadow_version'::text
                                     || ARRAY(SELECT format('%I', c.value ->> 'name') FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n) ORDER BY n)
                                     || ARRAY['served_version', 'scored_at', 'error', 'job'], ', '),
                     array_to_string(selected, ', '),
                     array_to_string(parameters, ', '),
                     array_to_string(ARRAY[mad.key_list(binding, 'k%3$s')]
                                     || ARRAY(SELECT 'c' || n FROM generate_series(1, cardinality(output_types)) n) || ARRAY['error', 'v'], ', ')));
END
$$;

-- The sidecar, in a streamed batch's transaction: why its shadow did not score (NULL: it did). Written only when it
-- changes, so a busy stream does not rewrite the binding's row every batch.
CREATE FUNCTION mad.record_stream_shadow(table_name text, shadow_error text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  SELECT mad.require_role('mad_sidecar', 'drain the outbox');
  UPDATE mad.prediction_tables p
  SET shadow_error = record_stream_shadow.shadow_error, shadow_error_at = CASE WHEN record_stream_shadow.shadow_error IS NULL THEN NULL ELSE now() END
  WHERE p.name = record_stream_shadow.table_name AND p.shadow_error IS DISTINCT FROM record_stream_shadow.shadow_error;
$$;

-- 020's mad.shadow_agreement, changed (025): the streamed rows count with the last job's.
CREATE OR REPLACE FUNCTION mad.shadow_agreement(model text, alias text)
RETURNS TABLE (prediction_table text, shadow_version int, rows_compared bigint, share_equal double precision, mean_absolute_difference double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables;
  labels text;
  values_ text;
  value_count int;
BEGIN
  FOR binding IN SELECT * FROM mad.prediction_tables p
                 WHERE split_part(p.model, '@', 1) = shadow_agreement.model AND mad.reference_alias(p.model) = shadow_agreement.alias
                   AND pg_catalog.to_regclass(format('mad_out.%I', p.name)) IS NOT NULL
                   AND pg_catalog.to_regclass(format('mad_shadow.%I', p.name)) IS NOT NULL
                 ORDER BY p.name LOOP
    SELECT string_agg(format('s.%1$I IS NOT DISTINCT FROM o.%1$I', c.value ->> 'name'), ' AND ')
    INTO labels FROM jsonb_array_elements(binding.columns) c WHERE c.value ->> 'type' IN ('text', 'integer');
    SELECT string_agg(format('abs(s.%1$I - o.%1$I)', c.value ->> 'name'), ' + '), count(*)
    INTO values_, value_count FROM jsonb_array_elements(binding.columns) c WHERE c.value ->> 'type' = 'real';
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, s.shadow_version, count(*), %s, %s FROM mad_shadow.%I s JOIN mad_out.%I o ON %s '
      'WHERE (s.job = $1 OR s.job IS NULL) AND s.error IS NULL AND o.error IS NULL GROUP BY s.shadow_version',  -- 025: + streamed
      binding.name,
      CASE WHEN labels IS NULL THEN 'NULL::double precision' ELSE format('avg(CASE WHEN %s THEN 1.0 ELSE 0.0 END)::double precision', labels) END,
      CASE WHEN values_ IS NULL THEN 'NULL::double precision' ELSE format('avg((%s) / %s)::double precision', values_, value_count) END,
      binding.name, binding.name, mad.key_list(binding, 's.%1$I = o.%1$I', ' AND '))
    USING binding.last_job;
  END LOOP;
END
$$;

-- 020's mad.deployment_rows, changed (025): the shadow arm counts the streamed rows with the last job's.
CREATE OR REPLACE FUNCTION mad.deployment_rows(model text, alias text)
RETURNS TABLE (prediction_table text, arm text, model_version int, rows_scored bigint, rows_failed bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables;
BEGIN
  FOR binding IN SELECT * FROM mad.prediction_tables p
                 WHERE split_part(p.model, '@', 1) = deployment_rows.model AND mad.reference_alias(p.model) = deployment_rows.alias
                   AND to_regclass(format('mad_out.%I', p.name)) IS NOT NULL
                 ORDER BY p.name LOOP
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, o.arm, o.model_version, count(*), count(o.error) FROM mad_out.%I o GROUP BY o.arm, o.model_version ORDER BY 2, 3',
      binding.name, binding.name);
    IF to_regclass(format('mad_shadow.%I', binding.name)) IS NOT NULL THEN
      RETURN QUERY EXECUTE format(
        'SELECT %L::text, ''shadow''::text, s.shadow_version, count(*), count(s.error) FROM mad_shadow.%I s WHERE (s.job = $1 OR s.job IS NULL) GROUP BY s.shadow_version',
        binding.name, binding.name) USING binding.last_job;
    END IF;
  END LOOP;
END
$$;

-- 020's mad.deployment_report, changed (025): shadow_error is a streamed batch's shadow error when one stands, else
-- the last job's.
CREATE OR REPLACE VIEW mad.deployment_report AS
  SELECT d.model, d.alias, arms.arm, arms.version, arms.percent, coalesce(sum(r.rows_scored), 0)::bigint AS rows_scored,
         coalesce(sum(r.rows_failed), 0)::bigint AS rows_failed,
         CASE WHEN sum(r.rows_scored) > 0 THEN sum(r.rows_failed)::double precision / sum(r.rows_scored) END AS error_rate,
         d.steps, d.next_step_at, d.seed,
         agreement.share_equal, agreement.mean_absolute_difference,
         CASE WHEN arms.arm = 'shadow' THEN coalesce(
           (SELECT p.shadow_error FROM mad.prediction_tables p  -- 025
            WHERE split_part(p.model, '@', 1) = d.model AND mad.reference_alias(p.model) = d.alias AND p.shadow_error IS NOT NULL
            ORDER BY p.shadow_error_at DESC LIMIT 1),
           (SELECT j.shadow_error FROM mad.jobs j JOIN mad.prediction_tables p ON p.name = j.prediction_table
            WHERE split_part(p.model, '@', 1) = d.model AND mad.reference_alias(p.model) = d.alias
              AND j.shadow_version = arms.version AND j.shadow_error IS NOT NULL
            ORDER BY j.id DESC LIMIT 1)) END AS shadow_error
  FROM mad.deployments d
  JOIN mad.aliases a USING (model, alias)
  CROSS JOIN LATERAL (VALUES ('champion', a.version, 100 - coalesce(d.canary_percent, 0)),
                             ('canary', d.canary_version, d.canary_percent),
                             ('shadow', d.shadow_version, d.shadow_percent)) arms (arm, version, percent)
  LEFT JOIN LATERAL mad.deployment_rows(d.model, d.alias) r ON r.arm = arms.arm AND r.model_version = arms.version
  LEFT JOIN LATERAL (SELECT sum(g.share_equal * g.rows_compared) / nullif(sum(g.rows_compared) FILTER (WHERE g.share_equal IS NOT NULL), 0) AS share_equal,
                            sum(g.mean_absolute_difference * g.rows_compared) / nullif(sum(g.rows_compared) FILTER (WHERE g.mean_absolute_difference IS NOT NULL), 0) AS mean_absolute_difference
                     FROM mad.shadow_agreement(d.model, d.alias) g
                     WHERE arms.arm = 'shadow' AND g.shadow_version = arms.version) agreement ON true
  WHERE arms.version IS NOT NULL
  GROUP BY d.model, d.alias, arms.arm, arms.version, arms.percent, d.steps, d.next_step_at, d.seed,
           agreement.share_equal, agreement.mean_absolute_difference;

REVOKE ALL ON FUNCTION mad.create_shadow_view(mad.prediction_tables), mad.upgrade_shadow_storage(mad.prediction_tables),
  mad.stream_shadow(text), mad.stream_shadow_plan(text), mad.record_stream_shadow(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.stream_shadow(text), mad.stream_shadow_plan(text), mad.record_stream_shadow(text, text) TO mad_sidecar;

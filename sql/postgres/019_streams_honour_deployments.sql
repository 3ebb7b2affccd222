-- Streaming honours the deployment (issue 15, docs/DEPLOYMENTS.md): a watched table's streamed rows are scored by the
-- version their key's bucket gets (mad.bucket(seed, mad.key_text(key)) < canary_percent / 100: the canary), and record
-- model_version and arm, so a streamed row and a refreshed row of the same key agree.
--
-- A batch learns the deployment in its own transaction (mad.stream_deployment, called between the claim and the read),
-- so a deploy, a step, a promote or an abort is seen by the next batch that starts after its commit, as an alias move is.
-- The sidecar hashes the keys with ModelAsData.Core.Deployments.StickyBucket, which equals mad.bucket.

-- The deployment a batch of a watched table scores by: the canary's version, percent and seed, or no row when every key
-- gets the champion. mad_sidecar only (it drains); the rows are readable by every mad role in mad.deployments anyway.
CREATE FUNCTION mad.stream_deployment(table_name text) RETURNS TABLE (canary_version int, canary_percent double precision, seed bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
  SELECT d.canary_version, d.canary_percent, d.seed
  FROM mad.prediction_tables p
  JOIN mad.deployments d ON d.model = split_part(p.model, '@', 1) AND d.alias = mad.reference_alias(p.model)
  WHERE p.name = stream_deployment.table_name AND d.canary_version IS NOT NULL;
$$;
REVOKE ALL ON FUNCTION mad.stream_deployment(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.stream_deployment(text) TO mad_sidecar;

-- 017's mad.stream_plan, with the changes marked 019: the upsert takes each row's version and arm as arrays (it took
-- one version for the batch, and the arm from the column's default), and the plan names the alias and its canary.
CREATE OR REPLACE FUNCTION mad.stream_plan(table_name text) RETURNS jsonb
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
  plan_canary int;  -- 019
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
  SELECT d.canary_version INTO plan_canary FROM mad.deployments d  -- 019
  WHERE d.model = model_name AND d.alias = mad.reference_alias(binding.model) AND d.canary_version IS NOT NULL;
  claimed_keys := 'jsonb_array_elements(pg_catalog.current_setting(''mad.stream_keys'')::jsonb) k';
  join_keys := mad.key_list(binding, 's.%1$I = (k.value ->> %4$s)::%2$s', ' AND ');
  output_types := ARRAY(SELECT mad.output_sql_type(c.value ->> 'type') FROM jsonb_array_elements(binding.columns) WITH ORDINALITY c(value, n) ORDER BY n);
  -- Parameters: $1..$k the keys as text, then each output column (array-valued ones as text literals), the errors,
  -- then (019) each row's version and arm: a batch under a canary scores each key by its bucket.
  parameters := ARRAY[mad.key_list(binding, '$%3$s::text[]')]
             || ARRAY(SELECT format('$%s::%s', key_count + n, CASE WHEN t LIKE '%[]' THEN 'text[]' ELSE t || '[]' END)
                      FROM unnest(output_types) WITH ORDINALITY u(t, n))
             || format('$%s::text[]', key_count + cardinality(output_types) + 1)
             || format('$%s::int[]', key_count + cardinality(output_types) + 2)      -- 019: versions
             || format('$%s::text[]', key_count + cardinality(output_types) + 3);    -- 019: arms
  selected := ARRAY[mad.key_list(binding, 'u.k%3$s::%2$s')]
           || ARRAY(SELECT CASE WHEN t LIKE '%[]' THEN format('u.c%s::%s', n, t) ELSE format('u.c%s', n) END
                    FROM unnest(output_types) WITH ORDINALITY u(t, n))
           || 'u.v'::text || 'pg_catalog.now()'::text || 'u.error'::text || 'u.arm'::text;  -- 019: u.v, u.arm per row
  updates := (SELECT string_agg(format('%I = EXCLUDED.%I', c, c), ', ')
              FROM (SELECT value ->> 'name' AS c FROM jsonb_array_elements(binding.columns)
                    UNION ALL SELECT unnest(ARRAY['model_version', 'scored_at', 'error', 'arm'])) u);  -- 017: + arm
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
                                     || ARRAY['model_version', 'scored_at', 'error', 'arm'], ', '),  -- 019: + arm
                     array_to_string(selected, ', '),
                     array_to_string(parameters, ', '),
                     array_to_string(ARRAY[mad.key_list(binding, 'k%3$s')]
                                     || ARRAY(SELECT 'c' || n FROM generate_series(1, cardinality(output_types)) n) || ARRAY['error', 'v', 'arm'], ', '),  -- 019: + v, arm
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
    'sha256', (SELECT v.sha256 FROM mad.model_versions v WHERE v.model = model_name AND v.version = model_version),
    'read_as', format('SET LOCAL ROLE %I', mad.reader_of(binding)),
    -- 019: the deployment the table is served through (null alias: a version reference, never routed) and its
    -- canary when the plan was made; each batch reads mad.deployments again in its own transaction
    -- (mad.stream_deployment) and plans again when the canary's version changed.
    'alias', mad.reference_alias(binding.model),
    'canary_version', plan_canary,
    'canary_sha256', (SELECT v.sha256 FROM mad.model_versions v WHERE v.model = model_name AND v.version = plan_canary));
END
$$;

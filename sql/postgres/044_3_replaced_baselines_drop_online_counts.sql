-- Drift monitoring (issue 16): a replaced baseline also deletes the online counts made in its old bins.
--
-- 018's mad.store_baseline deletes the counts made in the bins of the baseline it replaces, but only those of the
-- model's prediction tables: the online requests' counts ('online:<model>', 026_2; and since 044_2 often counted into
-- a first window learned online) stayed, counted into bins that no longer exist, and mad.drift('online:<model>')
-- compared them bin by bin with the new baseline's. The same function, with the one change marked 044.

CREATE OR REPLACE FUNCTION mad.store_baseline(model_name text, model_version int, source text, kind text, profiles jsonb) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  profile jsonb;
  edges float8[];
  counts bigint[];
  dropped bigint;
BEGIN
  PERFORM mad.require_role('mad_admin', 'set a baseline');
  PERFORM mad.ready_signature(model_name, model_version);
  IF kind IS NULL OR kind NOT IN ('input', 'output') THEN
    RAISE EXCEPTION 'A baseline''s kind is ''input'' or ''output''; got %.', coalesce(quote_literal(kind), 'NULL') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF profiles IS NULL OR jsonb_typeof(profiles) <> 'array' OR jsonb_array_length(profiles) = 0 THEN
    RAISE EXCEPTION 'A baseline needs at least one column profile; got %.', coalesce(profiles::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR profile IN SELECT value FROM jsonb_array_elements(profiles) LOOP
    counts := ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(profile -> 'counts') x);
    IF profile ->> 'type' = 'numeric' THEN
      edges := ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(profile -> 'edges') WITH ORDINALITY e(x, n) ORDER BY n);
      IF EXISTS (SELECT FROM generate_series(2, cardinality(edges)) i WHERE NOT edges[i] > edges[i - 1]) THEN
        RAISE EXCEPTION 'The bins of column % must rise; got %.', quote_literal(profile ->> 'column'), profile -> 'edges' USING ERRCODE = 'invalid_parameter_value';
      END IF;
    END IF;
    IF EXISTS (SELECT FROM unnest(counts) c WHERE c < 0) OR coalesce((profile ->> 'null_count')::bigint, -1) < 0 THEN
      RAISE EXCEPTION 'The counts of column % must be whole numbers >= 0; got %.', quote_literal(profile ->> 'column'), profile -> 'counts' USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;

  DELETE FROM mad.baselines b WHERE b.model = model_name AND b.version = model_version AND b.kind = store_baseline.kind;
  DELETE FROM mad.profile_counts c
  WHERE (c.prediction_table IN (SELECT p.name FROM mad.prediction_tables p WHERE split_part(p.model, '@', 1) = model_name)
         OR c.prediction_table = 'online:' || model_name) -- 044
    AND c.version = model_version AND c.kind = store_baseline.kind;
  GET DIAGNOSTICS dropped = ROW_COUNT;
  IF dropped > 0 THEN
    RAISE NOTICE 'The % profile counts of %@% were counted into the bins of the baseline it replaces, so they were deleted.', kind, model_name, model_version;
  END IF;
  INSERT INTO mad.baselines (model, version, kind, column_name, type, edges, categories, counts, null_count, spread, source)
  SELECT model_name, model_version, store_baseline.kind, p ->> 'column', p ->> 'type',
         CASE WHEN p ->> 'type' = 'numeric' THEN ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(p -> 'edges') WITH ORDINALITY e(x, n) ORDER BY n) END,
         CASE WHEN p ->> 'type' = 'category' THEN ARRAY(SELECT x FROM jsonb_array_elements_text(p -> 'categories') WITH ORDINALITY e(x, n) ORDER BY n) END,
         ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(p -> 'counts') WITH ORDINALITY e(x, n) ORDER BY n),
         (p ->> 'null_count')::bigint, coalesce((p ->> 'spread')::float8, 0), source
  FROM jsonb_array_elements(profiles) p;
  RETURN jsonb_array_length(profiles);
END
$$;

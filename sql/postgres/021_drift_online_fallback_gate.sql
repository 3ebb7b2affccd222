-- Drift monitoring, part 2 (issue 16): a version without a baseline falls back to its first window of traffic as
-- reference, and mad.drift says which reference each row compares with.
--
-- First window: a door that scores a version without a baseline (no mad.baselines row of that kind) keeps its first
-- unit of work's values (a refresh task, a stream pass), fits bins on them by mad.set_baseline's rules
-- (ModelAsData.Core.Monitoring.ProfileBuilder) and stores them here, with those rows' counts, as the version's
-- reference = 'first_window'. From then on every door counts into those bins, so later windows compare with the
-- traffic the version first saw. A baseline set later replaces it (mad.store_baseline deletes the counts made in the
-- old bins, as for any baseline it replaces).

ALTER TABLE mad.baselines ADD COLUMN reference text NOT NULL DEFAULT 'baseline' CHECK (reference IN ('baseline', 'first_window'));

-- Stores the first-window reference of a version scored into a prediction table (the sidecar, in the transaction
-- that writes the rows and their counts). A column of a kind that has a profile already keeps it: a baseline always
-- wins, and of two doors learning at once the first to commit does. Returns the profiles stored.
CREATE FUNCTION mad.store_first_window(table_name text, model_version int, profile_kind text, profiles jsonb) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  stored int;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'store a first-window reference');
  SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = table_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'There is no prediction table %.', quote_literal(table_name) USING ERRCODE = 'undefined_object';
  END IF;
  IF profile_kind IS NULL OR profile_kind NOT IN ('input', 'output') OR jsonb_typeof(profiles) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'A first-window reference is a kind (''input'' or ''output'') and an array of profiles.' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM mad.baselines b WHERE b.model = split_part(binding.model, '@', 1) AND b.version = model_version AND b.kind = profile_kind) THEN
    RETURN 0;
  END IF;
  INSERT INTO mad.baselines (model, version, kind, column_name, type, edges, categories, counts, null_count, spread, source, reference)
  SELECT split_part(binding.model, '@', 1), model_version, profile_kind, p ->> 'column', p ->> 'type',
         CASE WHEN p ->> 'type' = 'numeric' THEN ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(p -> 'edges') WITH ORDINALITY e(x, n) ORDER BY n) END,
         CASE WHEN p ->> 'type' = 'category' THEN ARRAY(SELECT x FROM jsonb_array_elements_text(p -> 'categories') WITH ORDINALITY e(x, n) ORDER BY n) END,
         ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(p -> 'counts') WITH ORDINALITY e(x, n) ORDER BY n),
         (p ->> 'null_count')::bigint, coalesce((p ->> 'spread')::float8, 0), binding.source::text, 'first_window'
  FROM jsonb_array_elements(profiles) p
  ON CONFLICT (model, version, kind, column_name) DO NOTHING;
  GET DIAGNOSTICS stored = ROW_COUNT;
  RETURN stored;
END
$$;

-- mad.drift as in 018, with the reference each row compares with: 'baseline' (mad.set_baseline) or 'first_window'.
DROP FUNCTION mad.drift(text, timestamptz, interval);
CREATE FUNCTION mad.drift(table_name text, since timestamptz DEFAULT NULL, "window" interval DEFAULT '1 day')
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, "column" text, kind text, metric text,
               value double precision, threshold double precision, drifted boolean, n_baseline bigint, n_current bigint,
               reference text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables := mad.require_prediction_table(table_name);
BEGIN
  PERFORM mad.require_binding_owner(binding, 'see the drift of');
  IF NOT EXISTS (SELECT FROM mad.baselines b WHERE b.model = split_part(binding.model, '@', 1)) THEN
    RAISE NOTICE 'No version of model % has a baseline or has been scored yet, so % has no drift to show. Set one: SELECT mad.set_baseline(%L, <version>, ''<table>'');',
      split_part(binding.model, '@', 1), table_name, split_part(binding.model, '@', 1);
  END IF;
  RETURN QUERY
  SELECT d.window_start, d.window_end, d.version, d.column_name, d.kind, m.metric, m.value, m.threshold, m.drifted,
         (SELECT sum(x) FROM unnest(d.baseline) x)::bigint + d.baseline_null,
         coalesce((SELECT sum(x) FROM unnest(d.current) x)::bigint, 0) + d.current_null,
         (SELECT b.reference FROM mad.baselines b
          WHERE b.model = split_part(binding.model, '@', 1) AND b.version = d.version AND b.kind = d.kind AND b.column_name = d.column_name)
  FROM mad.drift_counts(binding, since, "window") d
  CROSS JOIN LATERAL mad.drift_metric_values(d.type, d.baseline, d.baseline_null, d.current, d.current_null,
                                             CASE WHEN d.type = 'numeric' THEN mad.bin_positions(d.edges) END, d.spread) WITH ORDINALITY m(metric, value, threshold, drifted, n)
  ORDER BY d.window_start, d.version, d.kind, d.column_name, m.n;
END
$$;

REVOKE ALL ON FUNCTION mad.store_first_window(text, integer, text, jsonb), mad.drift(text, timestamp with time zone, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.store_first_window(text, integer, text, jsonb) TO mad_sidecar;
GRANT EXECUTE ON FUNCTION mad.drift(text, timestamp with time zone, interval) TO mad_admin, mad_user;

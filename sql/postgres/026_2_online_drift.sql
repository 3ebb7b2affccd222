-- Drift monitoring, part 4 (issue 16): online requests are counted, and mad.drift reports them.
--
-- CALL mad.predict, mad.predict_async and the HTTP door name a model, not a prediction table, so their rows are
-- counted under the pseudo table name 'online:<model>' (a prediction table's name is an identifier, so it never
-- holds ':'): per version, hour, column and bin in mad.profile_counts, against the version's baseline (or the first
-- window another door stored), by the sidecar's prediction-log writer in the transaction of the log's batch, off the
-- callers' path (ModelAsData.Postgres.Monitoring.OnlineProfileCounts). A request's features are keyed by model input;
-- they are counted under the source columns the model's first prediction table maps them from (else by input name),
-- the columns its baseline profiles.
--
-- mad.drift('online:churn') and mad.drift_histograms('online:churn') answer mad_admin only: requests come from every
-- caller of the model, so no table owner stands for them.

-- The binding mad.drift and mad.drift_histograms read counts for: a prediction table (its owner, a member, or
-- mad_admin may ask), or 'online:<model>' (mad_admin): only name and model are set, as mad.drift_counts reads them.
CREATE FUNCTION mad.drift_binding(table_name text) RETURNS mad.prediction_tables
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
DECLARE
  binding mad.prediction_tables;
  model_name text;
BEGIN
  IF table_name LIKE 'online:%' THEN
    model_name := substr(table_name, length('online:') + 1);
    PERFORM mad.require_role('mad_admin', 'see the drift of online requests');
    PERFORM mad.require_model(model_name);
    binding.name := table_name;
    binding.model := model_name;
    RETURN binding;
  END IF;
  binding := mad.require_prediction_table(table_name);
  PERFORM mad.require_binding_owner(binding, 'see the drift of');
  RETURN binding;
END
$$;

-- 021's mad.drift, reading its binding through mad.drift_binding (changed lines marked 026).
CREATE OR REPLACE FUNCTION mad.drift(table_name text, since timestamptz DEFAULT NULL, "window" interval DEFAULT '1 day')
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, "column" text, kind text, metric text,
               value double precision, threshold double precision, drifted boolean, n_baseline bigint, n_current bigint,
               reference text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables := mad.drift_binding(table_name); -- 026
BEGIN
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

-- 018's mad.drift_histograms, reading its binding through mad.drift_binding (026).
CREATE OR REPLACE FUNCTION mad.drift_histograms(table_name text, since timestamptz DEFAULT NULL, "window" interval DEFAULT '1 day')
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, "column" text, kind text, bin int, label text,
               baseline bigint, current bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables := mad.drift_binding(table_name); -- 026
BEGIN
  RETURN QUERY
  SELECT d.window_start, d.window_end, d.version, d.column_name, d.kind, i,
         CASE WHEN may_read THEN mad.bin_label(d.type, d.edges, d.categories, i) WHEN i = -1 THEN 'null' ELSE 'bin ' || i END,
         CASE WHEN may_read THEN CASE WHEN i = -1 THEN d.baseline_null ELSE d.baseline[i + 1] END END,
         CASE WHEN i = -1 THEN d.current_null ELSE d.current[i + 1] END
  FROM mad.drift_counts(binding, since, "window") d
  CROSS JOIN LATERAL (SELECT to_regclass(d.source) IS NOT NULL AND pg_catalog.has_table_privilege(mad.caller_role(), to_regclass(d.source), 'SELECT') AS may_read) r
  CROSS JOIN LATERAL generate_series(-1, cardinality(d.baseline) - 1) i
  ORDER BY d.window_start, d.version, d.kind, d.column_name, i;
END
$$;

-- What the log writer needs to count a model's requests: the input-to-column mapping of the model's first
-- prediction table (NULL: none; inputs are then their own columns). mad.prediction_tables is readable by the
-- sidecar already; this keeps the choice in one place.
CREATE FUNCTION mad.online_features(model_name text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  SELECT p.features FROM mad.prediction_tables p WHERE split_part(p.model, '@', 1) = model_name ORDER BY p.created_at, p.name LIMIT 1;
$$;

REVOKE ALL ON FUNCTION mad.drift_binding(text), mad.online_features(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.online_features(text) TO mad_sidecar;

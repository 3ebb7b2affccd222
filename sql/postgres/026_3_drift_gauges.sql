-- Drift monitoring, part 5 (issue 16): the sidecar's Prometheus gauges. Every few heartbeats each sidecar reads, for
-- every set of profile counts with rows in the current window (a prediction table, or 'online:<model>'), mad.drift's
-- default window (one day ending with the current hour) per version, column and metric, and sets
-- mad_drift_value / mad_drift_threshold / mad_drift_drifted / mad_drift_rows from it. Counts with no rows in that window
-- are skipped (probed by primary key), so the read is bounded by the counts of the last day. Metric values only: no bins, no quantiles.
CREATE FUNCTION mad.drift_gauges()
RETURNS TABLE (prediction_table text, version int, "column" text, kind text, metric text, value double precision,
               threshold double precision, drifted boolean, n_current bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  since timestamptz := date_trunc('hour', now()) + interval '1 hour' - interval '1 day';
  counted text;
  binding mad.prediction_tables;
BEGIN
  PERFORM mad.require_role('mad_sidecar', 'read the drift gauges');
  -- Each candidate is probed through the primary key's (prediction_table, window_start) prefix: no scan of all counts.
  FOR counted IN SELECT t.name FROM (SELECT p.name FROM mad.prediction_tables p UNION ALL SELECT 'online:' || m.name FROM mad.models m) t
                 WHERE EXISTS (SELECT FROM mad.profile_counts c WHERE c.prediction_table = t.name AND c.window_start >= since)
                 ORDER BY 1 LOOP
    IF counted LIKE 'online:%' THEN
      binding := NULL;
      binding.name := counted;
      binding.model := substr(counted, length('online:') + 1);
    ELSE
      SELECT * INTO binding FROM mad.prediction_tables p WHERE p.name = counted;
    END IF;
    RETURN QUERY
    SELECT counted, d.version, d.column_name, d.kind, m.metric, m.value, m.threshold, m.drifted,
           coalesce((SELECT sum(x) FROM unnest(d.current) x)::bigint, 0) + d.current_null
    FROM mad.drift_counts(binding, since, interval '1 day') d
    CROSS JOIN LATERAL mad.drift_metric_values(d.type, d.baseline, d.baseline_null, d.current, d.current_null,
                                               CASE WHEN d.type = 'numeric' THEN mad.bin_positions(d.edges) END, d.spread) WITH ORDINALITY m(metric, value, threshold, drifted, n)
    ORDER BY d.version, d.kind, d.column_name, m.n;
  END LOOP;
END
$$;

REVOKE ALL ON FUNCTION mad.drift_gauges() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mad.drift_gauges() TO mad_sidecar;

-- Drift monitoring (issue 16): the drift gate controls its false alarms family-wise.
--
-- 026_1's gate failed a canary on any drifted metric of any input column: about six metrics per column, each at its
-- own 1 % noise level, so a canary with no drift was refused now and then by chance (DriftGateTests' unshifted case,
-- once in CI). The gate now decides on tests, not on single metrics:
--   * The family is every p-value the gate computes at one step: each judged input column (gate_min_rows rows) of
--     each source of counts (the prediction tables served through the alias, 'online:<model>') times the two
--     p-value metrics, ks_p (numbers) and chi2_p (all). Holm-Bonferroni at alpha = 0.01 over that family: sorted
--     p(1) <= ... <= p(m), p(k) is rejected when every p(j), j <= k, is <= alpha / (m - j + 1), i.e. its Holm-adjusted
--     p-value max over j <= k of min(1, (m - j + 1) * p(j)) is <= alpha. Holm holds the chance of one or more false
--     refusals at alpha under any dependence between the tests (columns of one row are dependent), and rejects more
--     than plain Bonferroni.
--   * The distances keep their thresholds (018: the larger of an effect floor and their own 1 % noise level) and
--     are the effect sizes a rejected test needs: ks_p pairs with ks and wasserstein, chi2_p with psi, js and linf. A
--     column fails the gate when one of its tests is rejected and a distance it pairs with is beyond its threshold.
--     A distance alone no longer fails it: with five distances per column at 1 % each, their union is what made the
--     false alarms, and a shift that moves a distance past its floor on gate_min_rows rows moves its test too.
-- mad.drift itself is unchanged: its `drifted` is per metric, uncorrected, as a monitor reads one metric at a time.

-- Every metric of every judged input column of one version since since (one window to the end of the current
-- hour), in each source of counts of model@alias: its prediction tables and 'online:<model>'.
CREATE FUNCTION mad.drift_gate_metrics(model_name text, alias_name text, model_version int, since timestamptz, min_rows bigint)
RETURNS TABLE (counts_of text, column_name text, metric text, value double precision, threshold double precision, drifted boolean,
               n_baseline bigint, n_current bigint)
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables; -- only the fields mad.drift_counts reads
  first timestamptz := date_trunc('hour', since);
BEGIN
  binding.model := model_name;
  FOR counts_of IN
    SELECT p.name FROM mad.prediction_tables p
    WHERE split_part(p.model, '@', 1) = model_name AND mad.reference_alias(p.model) = alias_name
    UNION ALL SELECT 'online:' || model_name
    ORDER BY 1 LOOP
    binding.name := counts_of;
    RETURN QUERY
    SELECT counts_of, d.column_name, m.metric, m.value, m.threshold, m.drifted, r.n_baseline, r.n_current
    FROM mad.drift_counts(binding, first, date_trunc('hour', now()) + interval '1 hour' - first) d
    CROSS JOIN LATERAL (SELECT (SELECT sum(x) FROM unnest(d.baseline) x)::bigint + d.baseline_null AS n_baseline,
                               coalesce((SELECT sum(x) FROM unnest(d.current) x)::bigint, 0) + d.current_null AS n_current) r
    CROSS JOIN LATERAL mad.drift_metric_values(d.type, d.baseline, d.baseline_null, d.current, d.current_null,
                                               CASE WHEN d.type = 'numeric' THEN mad.bin_positions(d.edges) END, d.spread) m
    WHERE d.version = model_version AND d.kind = 'input' AND r.n_current >= min_rows;
  END LOOP;
END
$$;

-- The gate's tests at one step, Holm-Bonferroni over all of them (see the top of this file): per source, column and
-- p-value metric, its p, its Holm-adjusted p among `tests` tests, whether it is rejected at alpha, the distance it
-- pairs with that is furthest beyond its threshold (NULL: none is), and whether the column fails the gate by it.
CREATE FUNCTION mad.drift_gate_tests(model_name text, alias_name text, model_version int, since timestamptz, min_rows bigint,
                                     alpha double precision DEFAULT 0.01)
RETURNS TABLE (counts_of text, column_name text, metric text, p double precision, adjusted_p double precision, tests bigint,
               rejected boolean, distance text, distance_value double precision, distance_threshold double precision, failed boolean,
               n_baseline bigint, n_current bigint)
LANGUAGE sql STABLE SET search_path = mad, pg_temp AS $$
  WITH metrics AS MATERIALIZED (SELECT * FROM mad.drift_gate_metrics(model_name, alias_name, model_version, since, min_rows)),
  ranked AS (
    SELECT m.counts_of, m.column_name, m.metric, m.value AS p, m.n_baseline, m.n_current, count(*) OVER () AS tests,
           row_number() OVER (ORDER BY m.value, m.counts_of, m.column_name, m.metric) AS rank
    FROM metrics m WHERE m.metric IN ('ks_p', 'chi2_p') AND m.value IS NOT NULL),
  holm AS (
    SELECT r.*, least(1, max((r.tests - r.rank + 1) * r.p) OVER (ORDER BY r.rank ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS adjusted_p
    FROM ranked r)
  SELECT h.counts_of, h.column_name, h.metric, h.p, h.adjusted_p, h.tests, h.adjusted_p <= alpha,
         d.metric, d.value, d.threshold, h.adjusted_p <= alpha AND d.metric IS NOT NULL, h.n_baseline, h.n_current
  FROM holm h
  LEFT JOIN LATERAL (
    SELECT m.metric, m.value, m.threshold FROM metrics m
    WHERE m.counts_of = h.counts_of AND m.column_name = h.column_name AND m.drifted
      AND m.metric = ANY (CASE h.metric WHEN 'ks_p' THEN ARRAY['ks', 'wasserstein'] ELSE ARRAY['psi', 'js', 'linf'] END)
    ORDER BY m.value / m.threshold DESC, m.metric LIMIT 1) d ON true
  ORDER BY h.rank;
$$;

-- The gate (017's contract: NULL passes, else why it fails), deciding as the top of this file says. Replaced in
-- place: mad.deployment_gates holds it as a regprocedure, i.e. by oid.
CREATE OR REPLACE FUNCTION mad.gate_drift(model text, alias text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  canary int;
  since timestamptz;
  hit record;
BEGIN
  IF NOT EXISTS (SELECT FROM mad.drift_gates g WHERE g.model = gate_drift.model AND g.alias = gate_drift.alias) THEN
    RETURN NULL;
  END IF;
  SELECT d.canary_version, d.updated_at INTO canary, since FROM mad.deployments d WHERE d.model = gate_drift.model AND d.alias = gate_drift.alias;
  IF canary IS NULL THEN
    RETURN NULL;
  END IF;
  -- The canary's traffic: since the canary started (its last 'canary' change).
  since := coalesce((SELECT max(h.changed_at) FROM mad.deployment_history h
                     WHERE h.model = gate_drift.model AND h.alias = gate_drift.alias AND h.kind = 'canary'), since);
  SELECT t.*, count(*) OVER () AS hits INTO hit
  FROM mad.drift_gate_tests(gate_drift.model, gate_drift.alias, canary, since, mad.setting_int('gate_min_rows', 100)) t
  WHERE t.failed
  ORDER BY t.adjusted_p, t.counts_of, t.column_name, t.metric LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  RETURN format('the canary (version %s) drifted on %s input test(s) since %s (Holm-Bonferroni at 0.01 over %s tests); first: %s.%s %s = %s (adjusted %s), %s = %s > threshold %s (%s rows against a baseline of %s)',
                canary, hit.hits, to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'), hit.tests, hit.counts_of, hit.column_name,
                hit.metric, trim(to_char(hit.p, '0.00EEEE')), trim(to_char(hit.adjusted_p, '0.00EEEE')), hit.distance,
                round(hit.distance_value::numeric, 4), round(hit.distance_threshold::numeric, 4), hit.n_current, hit.n_baseline);
END
$$;

-- 026_1's per-source helper; nothing calls it now.
DROP FUNCTION mad.drifted_inputs(text, text, integer, timestamp with time zone, bigint);

UPDATE mad.deployment_gates SET description =
  'With mad.set_drift_gate on: no input column of the canary''s own traffic may drift (Holm-Bonferroni over its ks_p and chi2_p tests, each with a distance beyond its threshold; docs/MONITORING.md).'
WHERE name = 'drift';

REVOKE ALL ON FUNCTION mad.drift_gate_metrics(text, text, integer, timestamp with time zone, bigint),
  mad.drift_gate_tests(text, text, integer, timestamp with time zone, bigint, double precision), mad.gate_drift(text, text) FROM PUBLIC;

-- mad.drift under a second at 10 M scored rows × 100 columns (issue 16, docs/BENCHMARKS.md "Drift"). Measured with
-- auto_explain (log_nested_statements, log_analyze) on the bench's 24,000 count rows, the time was not the metrics
-- nor the PL/pgSQL wrapper but two things in 047's mad.drift_counts:
--
-- * JIT. A SQL function with a SET clause is planned on its own, with no idea how few rows its CTEs hold: the plan
--   was costed at 28 M (100 M grid rows estimated, 31,200 real), above jit_above_cost, so every call compiled ~95
--   functions: 1.4 s of a 1.44 s call whose work took 33 ms. mad.drift's own query (drift_counts × the metrics, 1,000
--   × 1,000 estimated rows) was JIT-compiled too. These queries read thousands of rows at most (one per window,
--   version, column and bin), so compiling never pays: jit is off inside them, and the ROWS estimates are the sizes
--   they have (one row per window and column; 7 metrics a column).
-- * The windows. Counts were matched to their window by a range join (every count row against every window: 24 ×
--   24,000 comparisons for hourly windows) and the dense bin arrays by a merge join on (version, kind, column) with
--   the window and bin as a filter (7.4 M rows removed for 31,200 kept: 2.2 s of the hourly call). Now a count row
--   finds its window by binary search over the windows' starts (width_bucket: the windows are consecutive, each
--   ending where the next begins, as generate_series makes them), only the counts inside the range are read (the
--   primary key leads with prediction_table, window_start), and each column's counts of a window are gathered
--   once into (bins, counts) arrays that the dense array reads by position.
--
-- The result is 047's, row for row: same columns, same windows (drift_windows is unchanged, so '1 day' is still a
-- calendar day in the session's time zone), same sums, bins outside the baseline's still ignored, a column with no
-- counts in a window still all zeros. The golden and drift tests check it (DriftTests, DriftGoldenTests,
-- DriftGateTests, FleetDriftTests).
CREATE OR REPLACE FUNCTION mad.drift_counts(binding mad.prediction_tables, since timestamptz, "window" interval)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, kind text, column_name text, type text,
               edges double precision[], categories text[], source text, baseline bigint[], baseline_null bigint, spread double precision,
               current bigint[], current_null bigint)
LANGUAGE sql STABLE ROWS 100 SET search_path = mad, pg_temp SET jit = off AS $$
  WITH windows AS MATERIALIZED (SELECT * FROM mad.drift_windows(since, "window")),
  bounds AS (SELECT array_agg(w.window_start ORDER BY w.window_start) AS starts, max(w.window_end) AS last_end FROM windows w),
  one_device AS (SELECT nullif(pg_catalog.current_setting('mad.device', true), '') AS id), -- 047
  counts AS ( -- 047, with only the range's rows read
    SELECT p.version, p.window_start, p.kind, p.column_name, p.bin, p.count
    FROM mad.profile_counts p
    WHERE (SELECT id FROM one_device) IS NULL AND p.prediction_table = binding.name
      AND p.window_start >= (SELECT starts[1] FROM bounds) AND p.window_start < (SELECT last_end FROM bounds)
    UNION ALL
    SELECT e.version, e.window_start, e.kind, e.column_name, e.bin, e.count
    FROM mad.edge_profile_counts e
    WHERE e.device = (SELECT id FROM one_device) AND e.prediction_table = binding.name
      AND e.window_start >= (SELECT starts[1] FROM bounds) AND e.window_start < (SELECT last_end FROM bounds)),
  counted AS ( -- a count's window: the last window starting at or before it (width_bucket is a binary search)
    SELECT s.starts[pg_catalog.width_bucket(c.window_start, s.starts)] AS window_start, c.version, c.kind, c.column_name, c.bin,
           sum(c.count)::bigint AS n
    FROM counts c CROSS JOIN bounds s
    GROUP BY 1, 2, 3, 4, 5),
  versions AS (
    SELECT DISTINCT c.version FROM counted c
    -- No rows counted in the range: the version last refreshed, else the newest with a baseline, gets its n_current = 0 rows.
    UNION SELECT coalesce(binding.refreshed_version, (SELECT max(b.version) FROM mad.baselines b WHERE b.model = split_part(binding.model, '@', 1)))
    WHERE NOT EXISTS (SELECT FROM counted)),
  per_column AS (
    SELECT c.window_start, c.version, c.kind, c.column_name, array_agg(c.bin) AS bins, array_agg(c.n) AS ns
    FROM counted c GROUP BY 1, 2, 3, 4)
  SELECT w.window_start, w.window_end, b.version, b.kind, b.column_name, b.type, b.edges, b.categories, b.source,
         b.counts, b.null_count, b.spread,
         -- 047 aggregated bins 0 .. n - 1, so a baseline without bins had NULL here, not '{}'
         CASE WHEN cardinality(b.counts) > 0 THEN
           ARRAY(SELECT coalesce(pc.ns[array_position(pc.bins, i)], 0) FROM generate_series(0, cardinality(b.counts) - 1) i ORDER BY i) END,
         coalesce(pc.ns[array_position(pc.bins, -1)], 0)
  FROM windows w
  CROSS JOIN mad.baselines b
  LEFT JOIN per_column pc ON pc.window_start = w.window_start AND pc.version = b.version AND pc.kind = b.kind AND pc.column_name = b.column_name
  WHERE b.model = split_part(binding.model, '@', 1) AND b.version IN (SELECT v.version FROM versions v);
$$;

-- The callers' own queries: a few thousand rows each, so JIT never pays for itself there either, and the metrics
-- come 6 or 7 to a column (4 for categories), not 1,000.
ALTER FUNCTION mad.drift_metric_values(text, bigint[], bigint, bigint[], bigint, double precision[], double precision) ROWS 7;
ALTER FUNCTION mad.drift_histograms(text, timestamp with time zone, interval) SET jit = off;

-- 026_2's mad.drift, with each column's row counts and reference found once per column and window rather than once
-- per metric row (6 or 7 a column: 43,200 subqueries for 24 hourly windows × 100 columns), and the reference by a
-- join on the baseline's key. Same rows, same order.
CREATE OR REPLACE FUNCTION mad.drift(table_name text, since timestamptz DEFAULT NULL, "window" interval DEFAULT '1 day')
RETURNS TABLE (window_start timestamptz, window_end timestamptz, version int, "column" text, kind text, metric text,
               value double precision, threshold double precision, drifted boolean, n_baseline bigint, n_current bigint,
               reference text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp SET jit = off AS $$
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
         d.n_baseline, d.n_current, d.reference
  FROM (SELECT d.*, (SELECT sum(x) FROM unnest(d.baseline) x)::bigint + d.baseline_null AS n_baseline,
               coalesce((SELECT sum(x) FROM unnest(d.current) x)::bigint, 0) + d.current_null AS n_current, b.reference
        FROM mad.drift_counts(binding, since, "window") d
        LEFT JOIN mad.baselines b
          ON b.model = split_part(binding.model, '@', 1) AND b.version = d.version AND b.kind = d.kind AND b.column_name = d.column_name
        OFFSET 0) d -- (OFFSET 0: the sums once per column, not once per metric)
  CROSS JOIN LATERAL mad.drift_metric_values(d.type, d.baseline, d.baseline_null, d.current, d.current_null,
                                             CASE WHEN d.type = 'numeric' THEN mad.bin_positions(d.edges) END, d.spread) WITH ORDINALITY m(metric, value, threshold, drifted, n)
  ORDER BY d.window_start, d.version, d.kind, d.column_name, m.n;
END
$$;

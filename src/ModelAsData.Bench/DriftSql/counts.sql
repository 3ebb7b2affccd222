-- mad bench --section drift (not timed): the profile counts a door would have written while scoring the source's
-- rows, binned as the doors bin (width_bucket over the baseline's edges: mad.bin_of for these values, none null and none at the top edge) and spread over the last 24 hours (each bin's
-- count split into 24 parts that sum to it), so the drift of one day holds exactly the source's rows. {values} is
-- the VALUES list of (column number, value) pairs DriftBench puts in.
INSERT INTO mad.profile_counts (prediction_table, version, window_start, kind, column_name, bin, count)
SELECT 'bench_drift', 1, date_trunc('hour', now()) - h * interval '1 hour', 'input', 'c' || b.c, b.b, b.n / 24 + CASE WHEN h < b.n % 24 THEN 1 ELSE 0 END
FROM (SELECT v.c, width_bucket(v.x, ARRAY[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]::float8[]) AS b, count(*) AS n
      FROM public.bench_drift_source CROSS JOIN LATERAL (VALUES {values}) v(c, x) GROUP BY 1, 2) b
CROSS JOIN generate_series(0, 23) h
WHERE b.n / 24 + CASE WHEN h < b.n % 24 THEN 1 ELSE 0 END > 0;

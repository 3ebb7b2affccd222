-- mad bench --section drift, the reference (timed): the PSI of every column against the baseline's shares by a full
-- scan of the source, as one would compute it without stored counts: bin every value with the baseline's edges
-- (width_bucket, which is mad.bin_of for these values: calling the function per value would only slow the scan), count per column and bin, and compare with ε = 1e-4 for a share of 0 on either side, as mad.drift
-- does (the bins empty on both sides add 0). {values} as in counts.sql.
WITH binned AS (
  SELECT v.c, width_bucket(v.x, ARRAY[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]::float8[]) AS b, count(*) AS n
  FROM public.bench_drift_source CROSS JOIN LATERAL (VALUES {values}) v(c, x) GROUP BY 1, 2),
grid AS (SELECT c, b FROM generate_series(1, 100) c, generate_series(0, 11) b),
shares AS (
  SELECT g.c, coalesce(n, 0)::float8 / sum(coalesce(n, 0)) OVER (PARTITION BY g.c) AS q, CASE WHEN g.b BETWEEN 1 AND 10 THEN 0.1 ELSE 0 END AS p
  FROM grid g LEFT JOIN binned USING (c, b)),
shares_eps AS (SELECT c, CASE WHEN q > 0 THEN q ELSE 1e-4 END AS q, CASE WHEN p > 0 THEN p ELSE 1e-4 END AS p FROM shares)
SELECT 'c' || c, sum((q - p) * ln(q / p)) FROM shares_eps GROUP BY c ORDER BY c;

SET client_min_messages = warning;
DROP TABLE IF EXISTS scan_src;
SELECT format('CREATE UNLOGGED TABLE scan_src AS SELECT g AS id, %s FROM generate_series(1, 1000000) g',
              string_agg(format('random()::real AS c%s', c), ', ')) FROM generate_series(1, 100) c \gexec
VACUUM ANALYZE scan_src;
\timing on
-- The same PSI of every column from a full scan: bin each value with the baseline's edges, count, compare.
SELECT format($q$
  WITH binned AS (SELECT v.c, width_bucket(v.x, ARRAY(SELECT i / 10.0 FROM generate_series(0, 10) i)::float8[]) AS b, count(*) AS n
                  FROM scan_src CROSS JOIN LATERAL (VALUES %s) v(c, x) GROUP BY 1, 2),
       shares AS (SELECT c, b, n::float8 / sum(n) OVER (PARTITION BY c) AS q FROM binned)
  SELECT count(*) FROM (SELECT c, sum((greatest(q, 1e-4) - 0.1) * ln(greatest(q, 1e-4) / 0.1)) FROM shares GROUP BY c) psi$q$,
  string_agg(format('(%s, c%s::float8)', c, c), ', ')) FROM generate_series(1, 100) c \gexec
\timing off

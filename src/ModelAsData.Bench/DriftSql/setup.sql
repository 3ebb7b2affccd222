-- mad bench --section drift, setup (not timed). A source of {rows} rows × 100 numeric columns, uniform on [0, 1) (below 1
-- also as real) and seeded; a prediction table bound to a stand-in model (no ONNX needed: drift reads counts, not models); a baseline
-- of the 100 columns with edges 0, 0.1, …, 1 and 100,000 rows in each inner bin (shares of exactly 0.1). Fixed
-- names, so a run first removes what an earlier or failed run left. {rows} and {columns} are put in by DriftBench
-- (whole numbers only).
SET client_min_messages = warning;
DELETE FROM mad.profile_counts WHERE prediction_table = 'bench_drift';
DELETE FROM mad.baselines WHERE model = 'bench_drift';
DELETE FROM mad.prediction_tables WHERE name = 'bench_drift';
DELETE FROM mad.model_versions WHERE model = 'bench_drift';
DELETE FROM mad.models WHERE name = 'bench_drift';
DROP TABLE IF EXISTS public.bench_drift_source;
SELECT setseed(0.16);
CREATE UNLOGGED TABLE public.bench_drift_source AS SELECT g AS id, {columns} FROM generate_series(1, {rows}) g;
ANALYZE public.bench_drift_source; -- (VACUUM cannot run in a multi-statement batch; a fresh table has nothing to vacuum)
INSERT INTO mad.models (name, created_by) VALUES ('bench_drift', 'bench');
INSERT INTO mad.model_versions (model, version, onnx, sha256, size_bytes, status, signature)
VALUES ('bench_drift', 1, '\x00', repeat('0', 64), 1, 'ready', '{}');
INSERT INTO mad.prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns)
VALUES ('bench_drift', 'public.bench_drift_source'::regclass, '{id}', '{bigint}', 'bench_drift', '{}',
        ARRAY(SELECT 'c' || c FROM generate_series(1, 100) c ORDER BY c), '[]');
INSERT INTO mad.baselines (model, version, kind, column_name, type, edges, counts, null_count, spread, source)
SELECT 'bench_drift', 1, 'input', 'c' || c, 'numeric', ARRAY(SELECT i / 10.0 FROM generate_series(0, 10) i ORDER BY i),
       ARRAY[0::bigint] || array_fill(100000::bigint, ARRAY[10]) || ARRAY[0::bigint], 0, 0.2887, 'public.bench_drift_source'
FROM generate_series(1, 100) c;

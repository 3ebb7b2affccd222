\timing off
SET client_min_messages = warning;
INSERT INTO mad.models (name, created_by) VALUES ('dbench', 'bench') ON CONFLICT DO NOTHING;
INSERT INTO mad.model_versions (model, version, onnx, sha256, size_bytes, status, signature)
VALUES ('dbench', 1, '\x00', repeat('0', 64), 1, 'ready', '{}') ON CONFLICT DO NOTHING;
INSERT INTO mad.prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns, owner)
VALUES ('dbench_scores', 'pg_class'::regclass, '{id}', '{bigint}', 'dbench', '{}', '{}', '[]', 'postgres') ON CONFLICT DO NOTHING;
-- 100 numeric columns, 11 edges (12 bins), baseline of 1 M rows.
INSERT INTO mad.baselines (model, version, kind, column_name, type, edges, counts, null_count, spread, source)
SELECT 'dbench', 1, 'input', 'c' || c, 'numeric', ARRAY(SELECT i / 10.0 FROM generate_series(0, 10) i),
       ARRAY[0] || array_fill(100000::bigint, ARRAY[10]) || ARRAY[0::bigint], 0, 0.29, 'bench'
FROM generate_series(1, 100) c ON CONFLICT DO NOTHING;
-- 10 M scored rows counted over the last 24 hours (≈ 416,667 an hour), each column across its 12 bins.
DELETE FROM mad.profile_counts WHERE prediction_table = 'dbench_scores';
INSERT INTO mad.profile_counts (prediction_table, version, window_start, kind, column_name, bin, count)
SELECT 'dbench_scores', 1, date_trunc('hour', now()) - h * interval '1 hour', 'input', 'c' || c, b,
       CASE WHEN b IN (0, 11) THEN 0 ELSE 41667 + (c * b * h) % 97 END
FROM generate_series(0, 23) h, generate_series(1, 100) c, generate_series(0, 11) b;
SELECT sum(count) AS counted_values, count(*) AS count_rows FROM mad.profile_counts WHERE prediction_table = 'dbench_scores';
\timing on
SELECT count(*) AS drift_rows FROM mad.drift('dbench_scores', now() - interval '23 hours', '1 day');
SELECT count(*) AS drift_rows FROM mad.drift('dbench_scores', now() - interval '23 hours', '1 day');
SELECT count(*) AS drift_rows_hourly FROM mad.drift('dbench_scores', now() - interval '23 hours', '1 hour');
\timing off

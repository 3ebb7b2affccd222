-- Prediction tables: a model reference bound to a source table, scored into mad_out_<name>. The columns carry the
-- names of PostgreSQL's mad.prediction_tables (sql/postgres/010_prediction_tables.sql) and mean what they mean
-- there; lists and objects are JSON text. PostgreSQL's last_job has no counterpart: the embedded store refreshes
-- in-process, without jobs.

CREATE TABLE mad_prediction_tables (
    name              TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63 AND name GLOB '[a-z_]*' AND name NOT GLOB '*[^a-z0-9_]*'),
    source            TEXT NOT NULL,  -- the catalog's spelling of the source table or view
    key_columns       TEXT NOT NULL CHECK (json_array_length(key_columns) > 0),  -- JSON array of source column names
    key_types         TEXT NOT NULL,  -- JSON array: each key column's declared type in the source
    model             TEXT NOT NULL,  -- the model reference as written: 'churn', 'churn@production', 'churn@7'
    features          TEXT NOT NULL,  -- JSON object: model input -> [source column, ...]
    feature_columns   TEXT NOT NULL,  -- JSON array: the source column of each feature slot, in model order
    columns           TEXT NOT NULL,  -- JSON array: the decoded output columns
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    refreshed_at      TEXT,
    refreshed_version INTEGER,
    rows_scored       INTEGER,
    rows_failed       INTEGER
) STRICT;

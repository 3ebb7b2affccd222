-- Prediction tables: a model reference bound to a source table; predictions live in mad_out_<name>.

CREATE TABLE mad_prediction_tables (
    name          TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    source        TEXT NOT NULL,
    key_columns   TEXT NOT NULL,  -- JSON array of source column names
    model_ref     TEXT NOT NULL,
    features      TEXT NOT NULL,  -- JSON: model input -> source column(s)
    columns       TEXT NOT NULL,  -- JSON: the decoded output columns
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    refreshed_at  TEXT,
    refreshed_version INTEGER,
    rows_scored   INTEGER,
    rows_failed   INTEGER
) STRICT;

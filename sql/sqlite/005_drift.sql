-- Drift monitoring (issue 16): the embedded store's mad_baselines and mad_profile_counts carry the columns of
-- PostgreSQL's mad.baselines and mad.profile_counts (sql/postgres/018_drift.sql) and mean what they mean there;
-- arrays are JSON text, times UTC ISO-8601 text. ModelAsData.Sqlite.SqliteMonitoring profiles baselines, and
-- computes drift with ModelAsData.Core.Monitoring.DriftEvaluator, the same rules as mad.drift.

CREATE TABLE mad_baselines (
    model        TEXT NOT NULL,
    version      INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('input', 'output')),
    column_name  TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('numeric', 'category')),
    edges        TEXT,            -- JSON array of rising numbers (numeric)
    categories   TEXT,            -- JSON array of text (category)
    counts       TEXT NOT NULL,   -- JSON array: rows per bin
    null_count   INTEGER NOT NULL CHECK (null_count >= 0),
    spread       REAL NOT NULL DEFAULT 0,
    source       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (model, version, kind, column_name),
    FOREIGN KEY (model, version) REFERENCES mad_model_versions (model, version)
) STRICT;

CREATE TABLE mad_profile_counts (
    prediction_table TEXT NOT NULL,
    version          INTEGER NOT NULL,
    window_start     TEXT NOT NULL,   -- the hour the rows were scored in ('2026-12-03T10:00:00.000000Z')
    kind             TEXT NOT NULL CHECK (kind IN ('input', 'output')),
    column_name      TEXT NOT NULL,
    bin              INTEGER NOT NULL CHECK (bin >= -1),   -- -1: nulls
    count            INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (prediction_table, window_start, version, kind, column_name, bin)
) STRICT;

-- The embedded registry: models, immutable versions with their ONNX bytes, aliases and every alias move.
-- Times are UTC ISO-8601 text ('2026-11-24T09:00:00.000000Z'), which sorts as time.

CREATE TABLE mad_models (
    name        TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE mad_model_versions (
    model       TEXT NOT NULL REFERENCES mad_models (name),
    version     INTEGER NOT NULL CHECK (version > 0),
    onnx        BLOB NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'rejected')),
    reason      TEXT,
    signature   TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (model, version)
) STRICT;

CREATE TABLE mad_aliases (
    model       TEXT NOT NULL,
    alias       TEXT NOT NULL CHECK (length(alias) BETWEEN 1 AND 63),
    version     INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES mad_model_versions (model, version)
) STRICT;

CREATE TABLE mad_alias_history (
    id            INTEGER PRIMARY KEY,
    model         TEXT NOT NULL,
    alias         TEXT NOT NULL,
    from_version  INTEGER,
    to_version    INTEGER NOT NULL,
    moved_by      TEXT NOT NULL,
    moved_at      TEXT NOT NULL,
    reason        TEXT
) STRICT;

CREATE INDEX mad_alias_history_by_alias ON mad_alias_history (model, alias, id);

-- The embedded registry: models, immutable versions with their ONNX bytes, aliases and every alias move. Tables and
-- columns carry the names of PostgreSQL's mad.models, mad.model_versions, mad.aliases and mad.alias_history
-- (sql/postgres/002_registry_tables.sql) with the prefix mad_, as SQLite has no schemas; a column means what it
-- means there. Times are UTC ISO-8601 text ('2026-11-24T09:00:00.000000Z'), which sorts as time; JSON is text.
-- Versions are validated in-process as they are pushed, so validated_by and validated_at are the pusher and the push.

CREATE TABLE mad_models (
    name          TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63 AND name GLOB '[a-z_]*' AND name NOT GLOB '*[^a-z0-9_]*'),
    last_version  INTEGER NOT NULL DEFAULT 0,  -- the version counter: a push takes last_version + 1
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;

CREATE TABLE mad_model_versions (
    model         TEXT NOT NULL REFERENCES mad_models (name),
    version       INTEGER NOT NULL CHECK (version > 0),
    onnx          BLOB NOT NULL,
    sha256        TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    size_bytes    INTEGER NOT NULL CHECK (size_bytes > 0),
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'rejected')),
    reason        TEXT,
    signature     TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}' CHECK (json_type(metadata) = 'object'),
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    validated_by  TEXT,
    validated_at  TEXT,
    PRIMARY KEY (model, version),
    CONSTRAINT model_versions_ready_has_signature CHECK (status <> 'ready' OR signature IS NOT NULL),
    CONSTRAINT model_versions_rejected_has_reason CHECK (status <> 'rejected' OR reason IS NOT NULL)
) STRICT;

CREATE TABLE mad_aliases (
    model         TEXT NOT NULL REFERENCES mad_models (name),
    alias         TEXT NOT NULL CHECK (length(alias) BETWEEN 1 AND 63 AND alias GLOB '[a-z_]*' AND alias NOT GLOB '*[^a-z0-9_]*'),
    version       INTEGER NOT NULL,
    updated_by    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES mad_model_versions (model, version)
) STRICT;

CREATE TABLE mad_alias_history (
    id            INTEGER PRIMARY KEY,
    model         TEXT NOT NULL,
    alias         TEXT NOT NULL,
    from_version  INTEGER,           -- NULL when the move created the alias
    to_version    INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('set', 'rollback')),
    moved_by      TEXT NOT NULL,
    moved_at      TEXT NOT NULL,
    reason        TEXT,
    FOREIGN KEY (model, to_version) REFERENCES mad_model_versions (model, version)
) STRICT;

CREATE INDEX mad_alias_history_lookup ON mad_alias_history (model, alias, moved_at DESC, id DESC);

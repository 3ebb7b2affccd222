-- Large models (issue 14; PostgreSQL's 030_model_chunks.sql): a version larger than one chunk (16 MiB) keeps its
-- bytes in mad_model_chunks, n = 0, 1, …, not in one BLOB, because SQLite holds at most 1 GB in one value
-- (SQLITE_MAX_LENGTH) and models reach 2 GB. Its mad_model_versions.onnx is then the empty BLOB (the column is NOT
-- NULL, and SQLite cannot drop that) and chunks counts its chunks; versions stored before, and small ones, keep
-- chunks = 0 and their bytes in onnx. Chunks are written and read with incremental BLOB I/O, so a chunk is never
-- copied whole through a parameter, and every load checks the sha256 over the whole.

ALTER TABLE mad_model_versions ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0 CHECK (chunks >= 0);

CREATE TABLE mad_model_chunks (
    model    TEXT NOT NULL,
    version  INTEGER NOT NULL,
    n        INTEGER NOT NULL CHECK (n >= 0),
    bytes    BLOB NOT NULL,
    PRIMARY KEY (model, version, n),
    FOREIGN KEY (model, version) REFERENCES mad_model_versions (model, version) ON DELETE CASCADE
) STRICT;

-- Deployments (docs/DEPLOYMENTS.md): what an alias serves, as PostgreSQL's mad.deployments and
-- mad.deployment_history (sql/postgres/017_deployments.sql) hold it, with the prefix mad_; a column means what it
-- means there. The alias (mad_aliases) is the champion; a deployment adds a canary (a second version and the percent
-- of keys it serves, by the published sticky hash bucket(seed, key_text) registered on every connection) and a shadow.
-- Rolling steps need sidecars to advance them, so the embedded store has no steps columns. Prediction tables get
-- their arm column when they are next refreshed (SQLite migrations cannot loop over tables).

CREATE TABLE mad_deployments (
    model           TEXT NOT NULL,
    alias           TEXT NOT NULL,
    seed            INTEGER NOT NULL,  -- a new canary gets a new one, so experiments are independent
    canary_version  INTEGER,
    canary_percent  REAL CHECK (canary_percent > 0 AND canary_percent <= 100),
    shadow_version  INTEGER,
    shadow_percent  REAL CHECK (shadow_percent > 0 AND shadow_percent <= 100),
    updated_by      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, alias) REFERENCES mad_aliases (model, alias),
    FOREIGN KEY (model, canary_version) REFERENCES mad_model_versions (model, version),
    FOREIGN KEY (model, shadow_version) REFERENCES mad_model_versions (model, version),
    CONSTRAINT deployments_canary_has_percent CHECK ((canary_version IS NULL) = (canary_percent IS NULL)),
    CONSTRAINT deployments_shadow_has_percent CHECK ((shadow_version IS NULL) = (shadow_percent IS NULL))
) STRICT;

CREATE TABLE mad_deployment_history (
    id              INTEGER PRIMARY KEY,
    model           TEXT NOT NULL,
    alias           TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('deploy', 'canary', 'step', 'shadow', 'promote', 'abort', 'gate')),
    version         INTEGER NOT NULL,  -- the champion after the change
    canary_version  INTEGER,
    canary_percent  REAL,
    shadow_version  INTEGER,
    shadow_percent  REAL,
    seed            INTEGER,
    changed_by      TEXT NOT NULL,
    changed_at      TEXT NOT NULL,
    reason          TEXT
) STRICT;

CREATE INDEX mad_deployment_history_lookup ON mad_deployment_history (model, alias, changed_at DESC, id DESC);

-- Drift monitoring on the embedded store (issue 16, docs/MONITORING.md "The drift gate"): PostgreSQL's drift gate
-- (sql/postgres/026_1, 044_1) and its counting switch (026_4), under the same names.
--
-- * mad_drift_gates: a row turns the gate of model@alias on (mad.set_drift_gate's table). SQLite has no rolling steps
--   (they need sidecars), so a canary's one step is `mad deploy promote`: with the gate on, a promotion whose canary's
--   own traffic drifts is refused, and the canary ends as a failed gate ends it on PostgreSQL (history kind 'gate').
--   Turn it on with sqlite3 or mad sql: INSERT INTO mad_drift_gates (model, alias) VALUES ('churn', 'production');
--   off: DELETE FROM mad_drift_gates WHERE model = 'churn' AND alias = 'production';
-- * gate_min_rows: a column is judged once the canary has counted this many rows in it (PostgreSQL's setting).
-- * drift_counting: 1 counts scored rows into profile counts, 0 counts nothing, at every door (refresh, predict()).
--   UPDATE mad_settings SET value = '0' WHERE name = 'drift_counting';

CREATE TABLE mad_drift_gates (
    model   TEXT NOT NULL,
    alias   TEXT NOT NULL,
    set_by  TEXT NOT NULL DEFAULT 'sqlite',
    set_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, alias) REFERENCES mad_aliases (model, alias) ON DELETE CASCADE
) STRICT;

INSERT INTO mad_settings (name, value, description) VALUES
  ('drift_counting', '1', 'Drift monitoring counts scored rows into profile counts (1) or not at all (0), at every door.'),
  ('gate_min_rows', '100', 'The drift gate judges an input column only once the canary has counted this many rows in it.')
ON CONFLICT (name) DO NOTHING;

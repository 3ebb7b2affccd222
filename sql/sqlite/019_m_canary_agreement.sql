-- Agreement between champion and canary (issue 15, docs/DEPLOYMENTS.md "Canary agreement"), as PostgreSQL's 043_2
-- keeps it. A `mad tables refresh` under a canary also scores a sample of the canary's keys with the champion (in the
-- champion's pass, never written) and keeps only sums here, beside the table's own counts: rows compared, rows whose
-- label outputs all equal (NULL without a label output), and per value output the sum of absolute differences (a
-- JSON object by output name). The sums add up over the refreshes of one deployment (its seed) and canary version,
-- as PostgreSQL's report adds up its jobs; a refresh under another one starts them again, one without a canary clears them.
-- (Named 019_m so that it sorts after 019_legacy_comparison.sql.)

ALTER TABLE mad_prediction_tables ADD COLUMN canary_agreement_seed INTEGER;
ALTER TABLE mad_prediction_tables ADD COLUMN canary_agreement_version INTEGER;
ALTER TABLE mad_prediction_tables ADD COLUMN canary_agreement_rows INTEGER;
ALTER TABLE mad_prediction_tables ADD COLUMN canary_agreement_equal INTEGER;
ALTER TABLE mad_prediction_tables ADD COLUMN canary_agreement_differences TEXT;

-- The embedded store's settings, named as PostgreSQL's mad.settings; only this one so far. Change it with
-- sqlite3: UPDATE mad_settings SET value = '25' WHERE name = 'canary_agreement_percent';
CREATE TABLE mad_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    description TEXT NOT NULL
) STRICT;

INSERT INTO mad_settings (name, value, description) VALUES
  ('canary_agreement_percent', '10', 'The percent of a canary''s keys a refresh also scores with the champion, for the report''s agreement between them (0: none).');

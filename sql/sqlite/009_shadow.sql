-- Shadow scoring (issue 15, docs/DEPLOYMENTS.md): `mad tables refresh` of a table served through an alias with a
-- shadow writes mad_out_<name>__shadow (keys, shadow_version, the same output columns, served_version, scored_at,
-- error) in the refresh's transaction, created then (SQLite migrations cannot loop over tables). What the shadow did
-- on the last refresh is kept beside the table's own counts, as PostgreSQL keeps it on the job (jobs.shadow_rows,
-- jobs.shadow_error): a shadow that fails to load or score never fails the served refresh, and says why here.

ALTER TABLE mad_prediction_tables ADD COLUMN shadow_version INTEGER;
ALTER TABLE mad_prediction_tables ADD COLUMN shadow_rows INTEGER;
ALTER TABLE mad_prediction_tables ADD COLUMN shadow_error TEXT;

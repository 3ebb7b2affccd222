-- Legacy replacement (issue 15, docs/DEPLOYMENTS.md), as PostgreSQL's 025_3_legacy_comparison.sql: a prediction table
-- names the column of its source that holds the legacy system's prediction (legacy_column, the catalog's spelling) and
-- the output column it is compared with (legacy_output). Names only: the agreement is computed when asked
-- (`mad tables legacy`, `mad deploy status`), from the source and mad_out_<name> as they are then. Both NULL: none.

ALTER TABLE mad_prediction_tables ADD COLUMN legacy_column TEXT;
ALTER TABLE mad_prediction_tables ADD COLUMN legacy_output TEXT;

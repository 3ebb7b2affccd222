-- Outcomes on the embedded store (docs/SYNC.md "Outcomes"): a prediction table's outcome source, bound as
-- PostgreSQL's mad.set_outcomes binds it (mad.outcomes, 022_1): the source table or view, its key columns (in the
-- prediction table's key order), the label column and the column saying when the label was observed. It records
-- names only; `mad sync push` reads the source's rows and sends them to the central mad.edge_outcomes.
-- IF NOT EXISTS: the same binding may come from the embedded outcome reports (issue 17) with the same columns.

CREATE TABLE IF NOT EXISTS mad_outcomes (
    prediction_table    TEXT PRIMARY KEY REFERENCES mad_prediction_tables (name) ON DELETE CASCADE,
    source              TEXT NOT NULL,
    key_columns         TEXT NOT NULL,     -- JSON array of the source's key columns
    label_column        TEXT NOT NULL,
    observed_at_column  TEXT NOT NULL,
    created_by          TEXT NOT NULL,
    created_at          TEXT NOT NULL
) STRICT;

-- The served history on the embedded store (issue 17), as PostgreSQL's mad_history.<name> (022_1_outcomes.sql): a
-- refresh replaces every row of mad_out_<name>, so the prediction that was served when a label was observed would be
-- gone. Each refresh of a table with outcomes bound (mad_outcomes) adds the rows it served here, in its transaction;
-- `mad monitor performance|compare` read these rows with the table's current ones. key is spelled as mad.key_text
-- spells it (the key columns' text joined by U+001F); outputs is a JSON object of the output columns.

CREATE TABLE mad_history (
    prediction_table TEXT NOT NULL REFERENCES mad_prediction_tables (name) ON DELETE CASCADE,
    key              TEXT NOT NULL,
    version          INTEGER NOT NULL,
    arm              TEXT NOT NULL,
    outputs          TEXT NOT NULL CHECK (json_type(outputs) = 'object'),
    scored_at        TEXT NOT NULL,
    PRIMARY KEY (prediction_table, key, scored_at)
) STRICT;

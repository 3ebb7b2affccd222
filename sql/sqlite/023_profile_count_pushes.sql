-- Drift of the fleet (docs/SYNC.md): how far a device's profile counts have been pushed, per device id and
-- prediction table. A push sends the totals of every hour from pushed_through on (the hour before the previous push
-- began: an hour still open then, or a refresh that began in the hour before and committed after, is sent again;
-- the central side keeps totals, so sending an hour twice adds only what grew) and then moves it on. A table whose
-- counts the central database skipped for a reason a push cannot mend (no such table there) keeps its mark, so
-- its counts are sent again once it exists.

CREATE TABLE mad_profile_count_pushes (
    device           TEXT NOT NULL,
    prediction_table TEXT NOT NULL,
    pushed_through   TEXT NOT NULL,   -- window_start from which the next push sends ('2026-12-03T10:00:00.000000Z')
    pushed_at        TEXT NOT NULL,
    PRIMARY KEY (device, prediction_table)
) STRICT;

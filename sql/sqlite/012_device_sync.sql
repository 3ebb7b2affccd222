-- Edge sync (docs/SYNC.md): the device this file is, once it has been pulled into or pushed from (at most one row).
-- The pulled models, versions, aliases and deployments land in the ordinary registry tables; this row only names
-- the device for the central database's mad.devices and notes when it last synced.

CREATE TABLE mad_device (
    singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
    id            TEXT,            -- the device id pushes use; NULL until one is given
    last_pull_at  TEXT,
    last_push_at  TEXT
) STRICT;

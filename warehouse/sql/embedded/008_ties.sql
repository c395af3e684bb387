-- 008: same-second ties nothing in the payloads decides (see docs/analysts.md).

CREATE TABLE IF NOT EXISTS same_second_ties (
    id          TEXT PRIMARY KEY,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    account     TEXT,
    livemode    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    event_ids   TEXT NOT NULL,
    version     INTEGER NOT NULL
);

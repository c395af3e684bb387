-- 008: same-second ties nothing in the payloads decides (see docs/analysts.md).

CREATE TABLE IF NOT EXISTS same_second_ties
(
    id          String,
    object_type String,
    object_id   String,
    account     Nullable(String),
    livemode    UInt8,
    created_at  DateTime,
    event_ids   String,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

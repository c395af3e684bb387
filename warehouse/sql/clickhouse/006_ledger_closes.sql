-- 006: closed months of the journal (`revline close`) and their lines as closed.

CREATE TABLE IF NOT EXISTS ledger_closes
(
    id        String,
    scope     String,
    month     String,
    closed_at DateTime,
    version   UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS ledger_closed_lines
(
    id             String,
    scope          String,
    month          String,
    date           String,
    entry_id       String,
    ledger_account String,
    currency       String,
    amount         Int64,
    memo           String,
    source_type    String,
    source_id      String,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

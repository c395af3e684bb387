-- 006: closed months of the journal (`revline close`) and their lines as closed.

CREATE TABLE IF NOT EXISTS ledger_closes (
    id        TEXT PRIMARY KEY,
    scope     TEXT NOT NULL,
    month     TEXT NOT NULL,
    closed_at INTEGER NOT NULL,
    version   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS ledger_closed_lines (
    id             TEXT PRIMARY KEY,
    scope          TEXT NOT NULL,
    month          TEXT NOT NULL,
    date           TEXT NOT NULL,
    entry_id       TEXT NOT NULL,
    ledger_account TEXT NOT NULL,
    currency       TEXT NOT NULL,
    amount         INTEGER NOT NULL,
    memo           TEXT NOT NULL,
    source_type    TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    version        INTEGER NOT NULL
);

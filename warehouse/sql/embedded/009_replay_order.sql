-- 009: an index in receipt order, so that each page `revline replay` reads is a range of it
-- (without it every page sorted the whole table).

CREATE INDEX IF NOT EXISTS stripe_events_received ON stripe_events (received_at_ms, id);

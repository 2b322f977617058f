
-- Version 2: headers stored with each event (a JSON object of strings: the
-- correlation id, a trace context), sent as the transport message's headers.
-- NULL when the event has none. Upgrades an install of version 1 in place.
-- SQLite has no ADD COLUMN IF NOT EXISTS: Migrate skips this statement when
-- the column exists; if you apply the file yourself, apply it once.
ALTER TABLE cqrs_outbox ADD COLUMN headers TEXT;


-- Version 2: headers stored with each event (a JSON object of strings: the
-- correlation id, a trace context), sent as the transport message's headers.
-- NULL when the event has none. Upgrades an install of version 1 in place.
ALTER TABLE cqrs_outbox ADD COLUMN IF NOT EXISTS headers TEXT;

-- cqrsync schema for SQLite. Migrate runs this file; it is safe to run again.
-- Times are Unix microseconds (UTC), so every dialect compares them the same way.

-- Events captured in the master's transactions, waiting for the relay.
CREATE TABLE IF NOT EXISTS cqrs_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT, -- commit order within SQLite's single writer
    cqrs_id     TEXT    NOT NULL,
    queue       TEXT    NOT NULL DEFAULT '',       -- '' = broadcast, else one replica queue
    body        BLOB    NOT NULL,                  -- the encoded payload
    created_us  INTEGER NOT NULL,
    lease_us    INTEGER NOT NULL DEFAULT 0         -- claimed by a relay until this time
);

-- Keys deleted on a replica, so that a late SAVE cannot bring them back.
CREATE TABLE IF NOT EXISTS cqrs_tombstones (
    cqrs_id     TEXT    NOT NULL,
    pk          TEXT    NOT NULL,
    revision    INTEGER NOT NULL,                  -- the DELETE's cqrs_revision
    updated_us  INTEGER NOT NULL,                  -- the DELETE's cqrs_updated
    deleted_us  INTEGER NOT NULL,                  -- when the replica applied it (retention)
    PRIMARY KEY (cqrs_id, pk)
);

CREATE INDEX IF NOT EXISTS cqrs_tombstones_deleted_us ON cqrs_tombstones (deleted_us);

-- cqrsync schema for PostgreSQL. Migrate runs this file; it is safe to run again.
-- Times are Unix microseconds (UTC), so every dialect compares them the same way.
--
-- Migrate sends the file as one multi-statement query, which PostgreSQL runs
-- in one transaction; if you apply it yourself, do the same
-- (psql --single-transaction -f ...), so that the lock below holds until the
-- end and concurrent runs cannot race on CREATE ... IF NOT EXISTS (which
-- otherwise may fail with a duplicate key in pg_type or pg_class).

-- cqrsync's migration lock (the key is 'cqrs' in ASCII, then 1), released
-- at commit. It is per database, so it also serialises Migrates of
-- different schemas: they are short.
SELECT pg_advisory_xact_lock(1668444787, 1);

-- Events captured in the master's transactions, waiting for the relay.
-- Relays claim the lowest ids FOR UPDATE SKIP LOCKED through the primary
-- key. There is deliberately no index on lease_us: every claim rewrites it,
-- and an index on it would make each of those updates a non-HOT update of
-- a high-churn table, for a scan that the primary key already serves.
CREATE TABLE IF NOT EXISTS cqrs_outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- capture order (not commit order)
    cqrs_id     TEXT   NOT NULL,
    queue       TEXT   NOT NULL DEFAULT '',  -- '' = broadcast, else one replica queue
    body        BYTEA  NOT NULL,             -- the encoded payload
    created_us  BIGINT NOT NULL,
    lease_us    BIGINT NOT NULL DEFAULT 0    -- claimed by a relay until this time
);

-- Keys deleted on a replica, so that a late SAVE cannot bring them back.
CREATE TABLE IF NOT EXISTS cqrs_tombstones (
    cqrs_id     TEXT   NOT NULL,
    pk          TEXT   NOT NULL,
    revision    BIGINT NOT NULL,             -- the DELETE's cqrs_revision
    updated_us  BIGINT NOT NULL,             -- the DELETE's cqrs_updated
    deleted_us  BIGINT NOT NULL,             -- when the replica applied it (retention)
    PRIMARY KEY (cqrs_id, pk)
);

CREATE INDEX IF NOT EXISTS cqrs_tombstones_deleted_us ON cqrs_tombstones (deleted_us);

-- Relays in other processes are woken by a NOTIFY trigger that package
-- outbox/pglisten installs when it starts listening: a notifying
-- transaction takes a database-wide lock at commit, so concurrent capturing
-- transactions would commit one at a time (no group commit) for the sake of
-- a relay that may not exist. A relay in the writer's own process is woken
-- in-process (Relay.Notify) and needs no trigger.

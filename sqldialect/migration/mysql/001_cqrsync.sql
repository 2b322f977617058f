-- cqrsync schema for MySQL 8.0+ and MariaDB 10.6+. Migrate runs this file; it is safe to run again.
-- Times are Unix microseconds (UTC), so every dialect compares them the same way.
-- Tables are InnoDB (ClaimOutbox relies on its row locks) in utf8mb4_bin, so keys compare
-- byte for byte whatever the server's default collation is.
-- Indexes are declared inside CREATE TABLE IF NOT EXISTS: MySQL 8.0, unlike MariaDB,
-- has no CREATE INDEX IF NOT EXISTS.

-- Events captured in the master's transactions, waiting for the relay.
-- AUTO_INCREMENT ids follow insert order, not commit order: a relay may claim id 10
-- before id 9 commits, and claims id 9 on a later round.
-- There is deliberately no index on lease_us: ClaimOutbox walks the primary key from
-- the lowest id and stops after its limit, passing only the rows other relays hold.
-- An index on (lease_us, id) tempts the optimizer into reading, locking and sorting
-- every free row on each claim, which is slow with a large backlog.
CREATE TABLE IF NOT EXISTS cqrs_outbox (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    cqrs_id     VARCHAR(255) NOT NULL,
    queue       VARCHAR(255) NOT NULL DEFAULT '',   -- '' = broadcast, else one replica queue
    body        LONGBLOB     NOT NULL,              -- the encoded payload
    created_us  BIGINT       NOT NULL,
    lease_us    BIGINT       NOT NULL DEFAULT 0,    -- claimed by a relay until this time
    lease_token BINARY(16)   NULL,                  -- the claim that set lease_us, to read its rows back
    PRIMARY KEY (id),
    KEY cqrs_outbox_lease_token (lease_token)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Keys deleted on a replica, so that a late SAVE cannot bring them back.
-- The key is at most 191 + 255 characters of 4 bytes (1784 bytes), within
-- InnoDB's 3072-byte index limit for the DYNAMIC row format.
CREATE TABLE IF NOT EXISTS cqrs_tombstones (
    cqrs_id     VARCHAR(191) NOT NULL,
    pk          VARCHAR(255) NOT NULL,              -- the primary key's canonical text
    revision    BIGINT       NOT NULL,              -- the DELETE's cqrs_revision
    updated_us  BIGINT       NOT NULL,              -- the DELETE's cqrs_updated
    deleted_us  BIGINT       NOT NULL,              -- when the replica applied it (retention)
    PRIMARY KEY (cqrs_id, pk),
    KEY cqrs_tombstones_deleted_us (deleted_us)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

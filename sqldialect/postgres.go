package sqldialect

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Postgres returns the dialect for PostgreSQL 12 or newer.
//
// It runs on any driver adapted to an [Executor]: database/sql with
// github.com/jackc/pgx/v5/stdlib (driver name "pgx") through [FromSQL] or
// the driver sqldialect/databasesql, or pgx itself through the driver
// sqldialect/pgxv5 (a *pgxpool.Pool, pipelined transactions).
//
// # Outbox
//
// Relays claim outbox rows with one statement that locks them FOR UPDATE
// SKIP LOCKED and sets their lease: concurrent relays never wait on each
// other and never claim the same row, even while a claim's transaction is
// still open. Claim under READ COMMITTED (the default isolation level): under
// REPEATABLE READ or SERIALIZABLE, a row another relay leased after the
// transaction's snapshot makes the claim fail with a serialization error.
//
// # Migrate
//
// Migrate sends the whole migration file in one multi-statement query, which
// PostgreSQL runs as one transaction (or inside the caller's), holding a
// transaction-level advisory lock: concurrent Migrate calls, from any
// number of processes, run one after the other instead of racing on
// CREATE TABLE IF NOT EXISTS. The Executor must therefore accept several
// statements in one Exec without arguments, as pgx and lib/pq do. Users who
// apply [Dialect.MigrationSQL] with their own tools should run it in one
// transaction (psql --single-transaction).
//
// # Introspection
//
// TableColumns finds the table the way an unqualified statement does,
// through the search_path, and reports types as PostgreSQL's format_type
// names them ("integer", "numeric(14,4)", "character varying(200)",
// "timestamp with time zone", "jsonb", ...); a domain is reported as its
// base type.
func Postgres() Dialect {
	return &standard{
		name:              "postgres",
		quoteChar:         '"',
		eng:               postgresEngine{},
		tombstoneConflict: onConflictTombstone,
		forUpdate:         "FOR UPDATE",
		unnestBatch:       true,
		migrateWhole:      true,
		updateReturning:   true,
		insertReturning:   true,
		dmlInWith:         true,
	}
}

// postgresColumnsSQL lists a table's columns. to_regclass resolves the
// quoted name through the search_path exactly as the dialect's unqualified
// statements do (and gives NULL, so no rows, for a missing table). A
// domain's declared type is its base type, so that callers mapping types
// (cqrsync.ValueTypeOfSQL) see "numeric(10,2)" rather than the domain's
// name. Identity, serial (a nextval default) and generated columns all count
// as having a default.
const postgresColumnsSQL = `SELECT a.attname,
	CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
	     ELSE format_type(a.atttypid, a.atttypmod) END,
	NOT a.attnotnull,
	a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
	COALESCE(a.attnum = (SELECT i.indkey[0] FROM pg_catalog.pg_index i
	                     WHERE i.indrelid = c.oid AND i.indisprimary), false)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.oid = to_regclass($1)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

// postgresEngine is PostgreSQL's engine.
type postgresEngine struct{ commonEngine }

func (postgresEngine) placeholder(n int) string { return "$" + strconv.Itoa(n) }

func (postgresEngine) castText(expr string) string { return "(" + expr + ")::text" }

func (postgresEngine) upsertConflict(d *standard, table, pk string, cols []string, guard Guard) string {
	return onConflictUpsert(d, table, pk, cols, guard)
}

// locksKeys is true: concurrent batches lock their keys in one order
// (lockKeys), so that they cannot deadlock.
func (postgresEngine) locksKeys() bool { return true }

func (postgresEngine) columns(ctx context.Context, ex Executor, d *standard, table string) ([]Column, error) {
	rows, err := ex.Query(ctx, postgresColumnsSQL, d.QuoteIdent(table))
	if err != nil {
		return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []Column
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.DeclaredType, &c.Nullable, &c.HasDefault, &c.PrimaryKey); err != nil {
			return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
	}
	return cols, nil
}

// claimOutbox leases rows in one statement. The subquery locks the
// lowest free rows FOR UPDATE SKIP LOCKED, so a row another relay is
// claiming right now (its transaction still open) is skipped, not waited
// for. A row another relay leased and committed after this statement's
// snapshot is locked in its new version and the lease_us condition checked
// again (READ COMMITTED), so it drops out: no row is claimed twice. The
// planner runs the LIMIT subquery once (a hash or aggregate over it), so the
// UPDATE touches at most Limit rows.
func (postgresEngine) claimOutbox(ctx context.Context, ex Executor, _ *standard, p *ClaimOutboxParams) ([]OutboxRow, error) {
	rows, err := ex.Query(ctx, `UPDATE cqrs_outbox SET lease_us = $1 WHERE id IN (
		SELECT id FROM cqrs_outbox WHERE lease_us < $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+outboxColumns,
		micros(p.LeaseUntil), micros(p.Now), p.Limit)
	if err != nil {
		return nil, err
	}
	return scanOutbox(rows)
}

// valuesSource casts every parameter to its column's type: in a
// VALUES list PostgreSQL would otherwise type them as text.
func (postgresEngine) valuesSource(d *standard, n int, names, types []string, first int) string {
	quoted := make([]string, len(names))
	for i, name := range names {
		quoted[i] = d.QuoteIdent(name)
	}
	return fmt.Sprintf("(VALUES %s) AS v(%s)", d.valuesRows(n, types, first, func(ph, typ string) string {
		if typ == "" {
			return ph
		}
		return ph + "::" + typ
	}), strings.Join(quoted, ", "))
}

// lockKeys serialises a key's events across transactions with
// transaction-scoped advisory locks. Under READ COMMITTED a SAVE's
// tombstone check can run before a concurrent DELETE of the same key
// commits; the SAVE's insert then waits for the deleted row and inserts it
// again once the DELETE commits. Holding the key for the whole transaction
// makes the second transaction start its statements after the first
// committed, so they see its row and tombstone.
//
// PostgreSQL's shared lock table is small (max_locks_per_transaction ×
// connections, 6400 by default), so a transaction must not take one lock
// per key of a large batch. Locks come in two levels, like intention locks:
// keys hash into 1024 buckets. A batch of up to lockKeysFine keys takes its
// buckets in shared mode, then each key exclusively; a larger batch (a bulk
// load) takes its buckets exclusively and no key locks, at most 1024 locks.
// A bucket held exclusively excludes every transaction touching a key in
// it. Buckets are taken before keys and each level in ascending order, so
// no two transactions wait for each other in a cycle. Hash collisions only
// serialise unrelated keys.
func (postgresEngine) lockKeys(ctx context.Context, ex Executor, keys []string) error {
	const lockKeysFine = 1000
	q := `SELECT count(*) FROM (
		SELECT CASE WHEN s.fine THEN pg_advisory_xact_lock(s.h)
		            WHEN $2 THEN pg_advisory_xact_lock(1, s.h::int)
		            ELSE pg_advisory_xact_lock_shared(1, s.h::int) END
		FROM (
			SELECT DISTINCT false AS fine, hashtextextended(k, 0) & 1023 AS h FROM unnest($1::text[]) AS k
			UNION ALL
			SELECT DISTINCT true, hashtextextended(k, 0) FROM unnest($1::text[]) AS k WHERE NOT $2) AS s
		ORDER BY s.fine, s.h) AS locked`
	// One statement takes both levels, buckets first, then keys, each in
	// ascending order: PostgreSQL evaluates a volatile select-list
	// expression after the ORDER BY's sort. (Inside an aggregate's ORDER
	// BY, as this statement had it, the arguments are evaluated before the
	// sort, in the DISTINCT's hash order; TestPostgresLockKeysOrder.)
	// Nothing is read from it: a pipelining executor sends it with the
	// statement that follows.
	return execDeferred(ctx, ex, q, keys, len(keys) > lockKeysFine)
}

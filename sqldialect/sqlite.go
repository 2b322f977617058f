package sqldialect

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// SQLite returns the dialect for SQLite 3.35 or newer (RETURNING and
// UPSERT), as provided by modernc.org/sqlite without cgo.
//
// SQLite has one writer at a time, so outbox IDs are assigned in commit
// order and a claim needs no row locks: relays lease rows with a time-limited
// lease instead of FOR UPDATE SKIP LOCKED. Open the database with a busy
// timeout (for modernc.org/sqlite: "_pragma=busy_timeout(5000)") and, for
// concurrent readers, WAL mode ("_pragma=journal_mode(WAL)").
func SQLite() Dialect {
	return &standard{
		name:              "sqlite",
		quoteChar:         '"',
		eng:               sqliteEngine{},
		tombstoneConflict: onConflictTombstone,
		updateReturning:   true,
		insertReturning:   true,
	}
}

// sqliteEngine is SQLite's engine.
type sqliteEngine struct{ commonEngine }

func (sqliteEngine) placeholder(n int) string { return "?" + strconv.Itoa(n) }

func (sqliteEngine) castText(expr string) string { return "CAST(" + expr + " AS TEXT)" }

func (sqliteEngine) upsertConflict(d *standard, table, pk string, cols []string, guard Guard) string {
	return onConflictUpsert(d, table, pk, cols, guard)
}

func (sqliteEngine) columns(ctx context.Context, ex Executor, d *standard, table string) ([]Column, error) {
	rows, err := ex.Query(ctx, `SELECT name, type, "notnull", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1) ORDER BY cid`, table)
	if err != nil {
		return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []Column
	for rows.Next() {
		var c Column
		var notNull, pk int
		if err := rows.Scan(&c.Name, &c.DeclaredType, &notNull, &c.HasDefault, &pk); err != nil {
			return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
		}
		c.Nullable = notNull == 0 && pk == 0
		c.PrimaryKey = pk == 1
		// An INTEGER PRIMARY KEY is the rowid: it fills itself in.
		if c.PrimaryKey && strings.EqualFold(c.DeclaredType, "INTEGER") {
			c.HasDefault = true
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func (sqliteEngine) claimOutbox(ctx context.Context, ex Executor, _ *standard, p *ClaimOutboxParams) ([]OutboxRow, error) {
	rows, err := ex.Query(ctx, `UPDATE cqrs_outbox SET lease_us = ?1 WHERE id IN (
		SELECT id FROM cqrs_outbox WHERE lease_us < ?2 ORDER BY id LIMIT ?3)
		RETURNING `+outboxColumns,
		micros(p.LeaseUntil), micros(p.Now), p.Limit)
	if err != nil {
		return nil, err
	}
	return scanOutbox(rows)
}

// onConflictUpsert is the PostgreSQL/SQLite conflict clause of Upsert: update
// every column but the key, where the revision guard lets it (no condition
// for GuardAny).
func onConflictUpsert(d *standard, table, pk string, cols []string, guard Guard) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ON CONFLICT (%s) DO UPDATE SET ", d.QuoteIdent(pk))
	first := true
	for _, c := range cols {
		if c == pk {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "%s = excluded.%s", d.QuoteIdent(c), d.QuoteIdent(c))
	}
	rev := d.QuoteIdent("cqrs_revision")
	if cond := revisionCondition(guard, d.QuoteIdent(table)+"."+rev, "excluded."+rev); cond != "" {
		b.WriteString(" WHERE " + cond)
	}
	return b.String()
}

// onConflictTombstone keeps the newest delete of a key: the later
// cqrs_updated, then the higher revision.
const onConflictTombstone = `ON CONFLICT (cqrs_id, pk) DO UPDATE SET
	revision = excluded.revision, updated_us = excluded.updated_us, deleted_us = excluded.deleted_us
	WHERE excluded.updated_us > cqrs_tombstones.updated_us
	   OR (excluded.updated_us = cqrs_tombstones.updated_us AND excluded.revision > cqrs_tombstones.revision)`

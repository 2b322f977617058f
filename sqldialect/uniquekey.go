package sqldialect

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cqrsync/cqrsync/internal/dberr"
)

// A replica table with a unique key besides its primary key (say email)
// cannot be written with MySQL's INSERT … ON DUPLICATE KEY UPDATE: the
// clause fires for a conflict on any unique key. Events of different keys
// are applied in parallel, so "7 takes a@x" can come before "5 gives a@x
// up"; the clause would then update row 5 with row 7's fields, silently.
// PostgreSQL and SQLite name the primary key in their conflict clause and
// fail with a unique violation instead, which the consumer retries until
// row 5 has changed. On MySQL such tables (UpsertParams.UniqueKeys) are
// written by key: the rows that exist are updated by primary key, guarded
// as the conflict clause guards them, and the others inserted without a
// conflict clause, so a conflict on the other key fails with the server's
// duplicate-key error (ER_DUP_ENTRY, 1062), and never writes another row.
//
// Whether a row exists is first read without locking. A locking read
// would lock the gap of a missing key under REPEATABLE READ, and two
// transactions inserting new keys at the end of the table (the common
// case) would deadlock on each other's gap. Another consumer process may
// write the key between that read and the write (LockKeys takes no locks
// on MySQL); the write tells, and the row is written the other way:
//
//   - the INSERT of a missing key fails with 1062: if a locking read now
//     finds the key, it was inserted meanwhile and is updated; otherwise
//     the conflict is on another unique key, and the error stands;
//   - the UPDATE of a stored key changes no row: if a locking read no
//     longer finds the key, it was deleted meanwhile and is inserted
//     (the tombstone guard decides, as always); otherwise the guards kept
//     the row.

// erDupEntry is MySQL's and MariaDB's duplicate-key error number.
const erDupEntry = 1062

// duplicateKey reports whether err is MySQL's duplicate-key error.
func duplicateKey(err error) bool {
	n, ok := dberr.MySQLNumber(err)
	return ok && n == erDupEntry
}

// upsertByKey is Upsert for a table with other unique keys, on a database
// whose conflict clause fires for any of them.
func (d *standard) upsertByKey(ctx context.Context, ex Executor, p *UpsertParams) (int64, error) {
	pkAt := slices.Index(p.Columns, p.PKColumn)
	if pkAt < 0 {
		return 0, fmt.Errorf("sqldialect: upsert %s: the columns %v lack the primary key %q: add it", p.Table, p.Columns, p.PKColumn)
	}
	n, err := d.writeByKey(ctx, ex, p, pkAt)
	if err != nil {
		return 0, fmt.Errorf("sqldialect: upsert %s: %w", p.Table, err)
	}
	return d.upsertResult(ctx, ex, p, n)
}

// writeByKey writes p's row by key, as the comment above says, and
// returns the rows the write changed.
func (d *standard) writeByKey(ctx context.Context, ex Executor, p *UpsertParams, pkAt int) (int64, error) {
	pk := p.Values[pkAt]
	exists, err := d.stored(ctx, ex, p.Table, p.PKColumn, []any{pk}, false)
	if err != nil {
		return 0, err
	}
	update := func() (int64, error) {
		q, args := d.updateByKey(p, pkAt)
		return ex.Exec(ctx, q, args...)
	}
	if exists {
		n, err := update()
		if err != nil || n > 0 {
			return n, err
		}
		if still, err := d.stored(ctx, ex, p.Table, p.PKColumn, []any{pk}, true); err != nil || still {
			return 0, err // the guards kept the row
		}
	}
	q, args := d.upsertInsert(p, false)
	n, err := ex.Exec(ctx, q, args...)
	if err == nil || !duplicateKey(err) {
		return n, err
	}
	if now, rerr := d.stored(ctx, ex, p.Table, p.PKColumn, []any{pk}, true); rerr != nil || !now {
		return 0, err // a conflict on another unique key
	}
	return update()
}

// stored reports whether table holds a row with one of the primary keys
// pks. With lock, it reads with a locking read: the latest committed rows,
// locked until the transaction ends.
func (d *standard) stored(ctx context.Context, ex Executor, table, pkColumn string, pks []any, lock bool) (bool, error) {
	q := fmt.Sprintf("SELECT 1 FROM %s WHERE %s IN (%s) LIMIT 1", d.QuoteIdent(table), d.QuoteIdent(pkColumn), d.params(1, len(pks)))
	if lock && d.forUpdate != "" {
		q += " " + d.forUpdate
	}
	rows, err := ex.Query(ctx, q, pks...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	found := rows.Next()
	if err := rows.Err(); err != nil {
		return false, err
	}
	return found, rows.Close()
}

// updateByKey renders the UPDATE of the stored row with p's key, guarded as
// upsertConflict guards it (the revision, and the tombstones as the
// INSERT is), with its arguments.
func (d *standard) updateByKey(p *UpsertParams, pkAt int) (string, []any) {
	table := d.QuoteIdent(p.Table)
	set := make([]string, 0, len(p.Columns))
	args := make([]any, 0, len(p.Columns)+6)
	next := 1
	for i, c := range p.Columns {
		if i == pkAt {
			continue
		}
		set = append(set, d.QuoteIdent(c)+" = "+d.eng.placeholder(next))
		args = append(args, p.Values[i])
		next++
	}
	where := []string{d.QuoteIdent(p.PKColumn) + " = " + d.eng.placeholder(next)}
	args = append(args, p.Values[pkAt])
	next++
	if cond := revisionCondition(p.Guard, table+"."+d.QuoteIdent("cqrs_revision"), d.eng.placeholder(next)); cond != "" {
		where = append(where, cond)
		args = append(args, p.Revision)
		next++
	}
	where = append(where, deleteTombstoneGuard(d.eng.placeholder(next), d.eng.placeholder(next+1), d.eng.placeholder(next+2), d.eng.placeholder(next+3)))
	args = append(args, p.CQRSID, p.Key, p.Revision, micros(p.Updated))
	return d.writePrefix + fmt.Sprintf("UPDATE %s SET %s WHERE %s", table, strings.Join(set, ", "), strings.Join(where, " AND ")), args
}

// writeByKey writes the rows idx of a batch for a table with other unique
// keys, after readState read them: the stored rows with one UPDATE joined
// to them by primary key, guarded as the conflict clause guards them, the
// missing ones with one INSERT without a conflict clause. The UPDATE goes
// first, so that a batch in which row 5 gives up a value and row 7 takes
// it succeeds. Where another process wrote the keys since the read (the
// UPDATE changed fewer rows than the guards let through, or the INSERT
// met a stored key), those rows are written one by one, as Upsert does.
func (b *upsertBatch) writeByKey(ctx context.Context, ex Executor, idx []int) error {
	d, p := b.d, b.p
	var stored, missing []int
	expected := int64(0) // the rows the UPDATE must change, at least
	for _, i := range idx {
		if !b.res[i].Existed {
			missing = append(missing, i)
			continue
		}
		stored = append(stored, i)
		if b.res[i].Written && p.Guard == GuardNewer {
			expected++ // a newer revision always changes the row
		}
	}
	if len(stored) > 0 {
		src, args := b.source(stored)
		args = append(args, p.CQRSID)
		table := d.QuoteIdent(p.Table)
		set := make([]string, 0, len(p.Columns))
		for i, c := range p.Columns {
			if i != b.pkAt {
				set = append(set, table+"."+d.QuoteIdent(c)+" = "+d.eng.storeValue("v."+d.QuoteIdent(c), p.Types[i]))
			}
		}
		pk := d.QuoteIdent(p.PKColumn)
		where := []string{deleteTombstoneGuard(d.eng.placeholder(len(args)), "v."+d.QuoteIdent(batchKey), "v."+d.QuoteIdent(batchRev), "v."+d.QuoteIdent(batchUpd))}
		if cond := revisionCondition(p.Guard, table+"."+d.QuoteIdent("cqrs_revision"), "v."+d.QuoteIdent(batchRev)); cond != "" {
			where = append(where, cond)
		}
		q := d.writePrefix + fmt.Sprintf("UPDATE %s JOIN %s ON %s.%s = v.%s SET %s WHERE %s",
			table, src, table, pk, pk, strings.Join(set, ", "), strings.Join(where, " AND "))
		n, err := ex.Exec(ctx, q, args...)
		if err != nil {
			return err
		}
		if n < expected {
			if err := b.oneByOne(ctx, ex, stored); err != nil {
				return err
			}
		}
	}
	if len(missing) > 0 {
		src, args := b.source(missing)
		args = append(args, p.CQRSID)
		_, err := ex.Exec(ctx, b.insert(src, len(args), false), args...)
		if !duplicateKey(err) {
			return err
		}
		// MySQL rolled the statement back. When none of its keys is stored
		// now, the conflict is on another unique key, and the error stands.
		pks := make([]any, len(missing))
		for j, i := range missing {
			pks[j] = p.Rows[i].Values[b.pkAt]
		}
		if raced, rerr := d.stored(ctx, ex, p.Table, p.PKColumn, pks, true); rerr != nil || !raced {
			return err
		}
		return b.oneByOne(ctx, ex, missing)
	}
	return nil
}

// oneByOne writes the rows idx of a batch by key, one at a time.
func (b *upsertBatch) oneByOne(ctx context.Context, ex Executor, idx []int) error {
	p := b.p
	for _, i := range idx {
		row := &p.Rows[i]
		one := &UpsertParams{Table: p.Table, PKColumn: p.PKColumn, Columns: p.Columns, Values: row.Values,
			Revision: row.Revision, Guard: p.Guard, CQRSID: p.CQRSID, Key: row.Key, Updated: row.Updated, UniqueKeys: true}
		if _, err := b.d.writeByKey(ctx, ex, one, b.pkAt); err != nil {
			return err
		}
	}
	return nil
}

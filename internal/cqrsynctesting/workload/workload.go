// Package workload is the random master workload that the convergence and
// scale-out tests share: one change per transaction on an "item" table
// (id, name, val) registered as the master model "item". It is apart from
// package cqrsynctesting because it imports the root package, whose own
// internal tests use cqrsynctesting.
package workload

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/cqrsync/cqrsync"
)

// RandomChange makes one random change of the item table in its own
// transaction, captured by master: a create (or re-create) of a free id of
// 1..keys, else an update (8 in 10) or a delete (2 in 10) of an existing
// one. Its draws from r are always in the same order, so a seed replays a
// run. The table's placeholders are '?' (SQLite, MySQL).
func RandomChange(ctx context.Context, db *sql.DB, master *cqrsync.Master[*sql.Tx], r *rand.Rand, keys int) error {
	id := int64(1 + r.IntN(keys))
	kind := r.IntN(10)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	var exists bool
	if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM item WHERE id = ?)", id).Scan(&exists); err != nil {
		return err
	}
	switch {
	case !exists:
		if _, err := tx.ExecContext(ctx, "INSERT INTO item (id, name, val) VALUES (?, ?, ?)", id, fmt.Sprintf("n%d", r.IntN(1000)), r.Int64N(1000)); err != nil {
			return err
		}
		err = master.Create(ctx, tx, "item", id)
	case kind < 2:
		err = master.Delete(ctx, tx, "item", id)
	default:
		if _, err := tx.ExecContext(ctx, "UPDATE item SET name = ?, val = ? WHERE id = ?", fmt.Sprintf("n%d", r.IntN(1000)), r.Int64N(1000), id); err != nil {
			return err
		}
		err = master.Update(ctx, tx, "item", id)
	}
	if err != nil && !errors.Is(err, cqrsync.ErrRowNotFound) {
		return err
	}
	return tx.Commit()
}

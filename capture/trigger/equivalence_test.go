package trigger_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
)

// step is one change, made with plain SQL on the trigger master and
// through the library on the library master.
type step struct {
	name string
	// sql is the plain change (run in one transaction).
	sql []string
	// library makes the same change with library capture.
	library func(ctx context.Context, mt *master, tx *sql.Tx, sql []string) error
	// rollback rolls the plain change back instead of committing it.
	rollback bool
}

func equivalenceSteps(b backend) []step {
	seen, raw := `'2024-01-02 03:04:05.123456+00'`, `'\x010241'`
	if b.name == "mysql" {
		seen, raw = `'2024-01-02 03:04:05.123456'`, `X'010241'`
	}
	insert := func(id, name string) string {
		return `INSERT INTO account (id, name, balance, active, born, seen, local_seen, uid, ratio, data, doc, raw) VALUES (` +
			id + `, '` + name + `', 10.50, TRUE, '1815-12-10', ` + seen + `, '2024-01-02 03:04:05.5',
			'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 0.1, '{"b": 1, "a": [1, 2.50, "x''y"]}', '{"z": 1, "a": null}', ` + raw + `)`
	}
	create := func(pks ...any) func(ctx context.Context, mt *master, tx *sql.Tx, stmts []string) error {
		return func(ctx context.Context, mt *master, tx *sql.Tx, stmts []string) error {
			if err := execAll(ctx, tx, stmts...); err != nil {
				return err
			}
			return mt.m.Create(ctx, tx, "account", pks...)
		}
	}
	update := func(pks ...any) func(ctx context.Context, mt *master, tx *sql.Tx, stmts []string) error {
		return func(ctx context.Context, mt *master, tx *sql.Tx, stmts []string) error {
			snap, err := mt.m.Snapshot(ctx, tx, "account", pks...)
			if err != nil {
				return err
			}
			if err := execAll(ctx, tx, stmts...); err != nil {
				return err
			}
			return mt.m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Previous: snap}, pks...)
		}
	}
	return []step{
		{name: "insert", sql: []string{insert("1", `Ada "the" first`)}, library: create(1)},
		{name: "multi-row insert", sql: []string{insert("2", "Bob") + ", (3, 'Cy', NULL, FALSE, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"}, library: create(2, 3)},
		{name: "update", sql: []string{`UPDATE account SET name = 'Ada Lovelace', balance = balance + 1 WHERE id = 1`}, library: update(1)},
		{name: "multi-row update", sql: []string{`UPDATE account SET active = NOT active, ratio = 2.5 WHERE id IN (2, 3)`}, library: update(2, 3)},
		{name: "rolled back", sql: []string{`UPDATE account SET name = 'never' WHERE id = 1`}, rollback: true},
		{name: "delete", sql: []string{`DELETE FROM account WHERE id = 2`}, library: func(ctx context.Context, mt *master, tx *sql.Tx, _ []string) error {
			return mt.m.Delete(ctx, tx, "account", 2)
		}},
		{name: "key re-created", sql: []string{insert("2", "Bob again")}, library: create(2)},
		{name: "nulls", sql: []string{`UPDATE account SET balance = NULL, data = NULL, seen = NULL, raw = NULL, uid = NULL WHERE id = 1`}, library: update(1)},
		{name: "two statements in one transaction", sql: []string{
			`UPDATE account SET name = 'first' WHERE id = 3`,
			`DELETE FROM account WHERE id = 1`,
		}, library: func(ctx context.Context, mt *master, tx *sql.Tx, stmts []string) error {
			if err := update(3)(ctx, mt, tx, stmts[:1]); err != nil {
				return err
			}
			mt.clock.Set(mt.times[1]) // the second statement's time
			return mt.m.Delete(ctx, tx, "account", 1)
		}},
	}
}

// TestTriggerEventsEqualLibraryEvents makes the same changes on two
// masters, one with plain SQL captured by triggers, one through library
// capture, and checks that the relays publish the same bytes.
func TestTriggerEventsEqualLibraryEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		trig := newMaster(t, b)
		trig.install(t)
		lib := newMaster(t, b)
		for _, s := range equivalenceSteps(b) {
			if s.rollback {
				tx, err := trig.db.BeginTx(t.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := execAll(t.Context(), tx, s.sql...); err != nil {
					t.Fatal(err)
				}
				if err := tx.Rollback(); err != nil {
					t.Fatal(err)
				}
				if got := trig.published(t); len(got) != 0 {
					t.Fatalf("%s: a rolled-back transaction published %q", s.name, got)
				}
				continue
			}
			trig.exec(t, s.sql...)
			got := trig.published(t)
			if len(got) == 0 {
				t.Fatalf("%s: the triggers published nothing", s.name)
			}
			// The library captures at the time each statement's
			// triggers did, so cqrs_updated is the same.
			lib.times = nil
			for _, body := range got {
				if at := updatedOf(t, body); !slices.ContainsFunc(lib.times, at.Equal) {
					lib.times = append(lib.times, at)
				}
			}
			slices.SortFunc(lib.times, time.Time.Compare)
			lib.libraryTx(t, lib.times[0], func(ctx context.Context, tx *sql.Tx) error { return s.library(ctx, lib, tx, s.sql) })
			want := lib.published(t)
			slices.Sort(got)
			slices.Sort(want)
			if d := diffBodies(got, want); d != "" {
				t.Errorf("%s: trigger and library events differ:\n%s", s.name, d)
			}
		}
	})
}

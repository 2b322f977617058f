package trigger_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// TestLibraryCaptureOnTriggerTable checks that a writer capturing through
// the library on a table with triggers makes one event per change, with
// the revisions library capture gives.
func TestLibraryCaptureOnTriggerTable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		mt := newMaster(t, b)
		mt.install(t)
		run := func(fn func(ctx context.Context, tx *sql.Tx) error) []string {
			t.Helper()
			mt.libraryTx(t, mt.clock.Now(), fn)
			return mt.published(t)
		}
		type want struct {
			signal cqrsync.SignalType
			pk     int64
			rev    int64
		}
		check := func(what string, got []string, w ...want) {
			t.Helper()
			if len(got) != len(w) {
				t.Fatalf("%s: %d events, want %d: %q", what, len(got), len(w), got)
			}
			for i, body := range got {
				p, err := cqrsync.DecodePayload([]byte(body), mt.pubAt)
				if err != nil {
					t.Fatal(err)
				}
				rev, _ := p.Revision()
				pk, _ := cqrsync.ColumnValue(cqrsync.TypeInt, p.InstancePK)
				if p.SignalType != w[i].signal || pk != w[i].pk || rev != w[i].rev {
					t.Errorf("%s: event %d is %s of %v at revision %d, want %s of %d at %d", what, i, p.SignalType, pk, rev, w[i].signal, w[i].pk, w[i].rev)
				}
			}
		}
		check("Insert", run(func(ctx context.Context, tx *sql.Tx) error {
			return mt.m.Insert(ctx, tx, "account", map[string]any{"id": 1, "name": "Ada", "active": true})
		}), want{cqrsync.SignalSave, 1, 0})
		check("UpdateRow", run(func(ctx context.Context, tx *sql.Tx) error {
			return mt.m.UpdateRow(ctx, tx, "account", 1, map[string]any{"name": "Ada L"})
		}), want{cqrsync.SignalSave, 1, 1})
		// A plain INSERT before Master.Create of the same row: on
		// PostgreSQL the library's event replaces the trigger's; on
		// MySQL both go, at the same revision (replicas drop the
		// second as a duplicate).
		inserted := []want{{cqrsync.SignalSave, 2, 0}}
		if b.name == "mysql" {
			inserted = append(inserted, want{cqrsync.SignalSave, 2, 0})
		}
		check("INSERT then Create", run(func(ctx context.Context, tx *sql.Tx) error {
			return createAfterInsert(ctx, mt, tx, 2)
		}), inserted...)
		check("Delete", run(func(ctx context.Context, tx *sql.Tx) error {
			return mt.m.Delete(ctx, tx, "account", 2)
		}), want{cqrsync.SignalDelete, 2, 1})
		if b.name == "postgres" {
			// A plain UPDATE before Master.Update of the same row: the
			// library's event replaces the trigger's.
			check("UPDATE then Update", run(func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `UPDATE account SET name = 'x' WHERE id = 1`); err != nil {
					return err
				}
				return mt.m.Update(ctx, tx, "account", 1)
			}), want{cqrsync.SignalSave, 1, 3})
		}
		// Plain SQL after a library capture in the same transaction is
		// the triggers' again: the library's mark ends with its call.
		rev := map[bool]int64{true: 4, false: 2}[b.name == "postgres"]
		check("Update then plain UPDATE of another row", run(func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO account (id, name) VALUES (3, 'Cy')`); err != nil {
				return err
			}
			if err := mt.m.Update(ctx, tx, "account", 1); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE account SET name = 'Cy 2' WHERE id = 3`)
			return err
		}), want{cqrsync.SignalSave, 3, 0}, want{cqrsync.SignalSave, 1, rev}, want{cqrsync.SignalSave, 3, 1})
		// After the library's statements, plain SQL on the same
		// connection is captured again (the MySQL mark was cleared).
		mt.db.SetMaxOpenConns(1)
		check("plain UPDATE after library capture", run(func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE account SET name = 'y' WHERE id = 1`)
			return err
		}), want{cqrsync.SignalSave, 1, rev + 1})
	})
}

func createAfterInsert(ctx context.Context, mt *master, tx *sql.Tx, id int) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO account (id, name) VALUES (`+mt.b.dialect.Placeholder(1)+`, 'Bob')`, id); err != nil {
		return err
	}
	return mt.m.Create(ctx, tx, "account", id)
}

// TestCancelledLibraryCaptureLeavesNoMark cancels a library capture's
// context between its mark and the end of its statements: database/sql
// rolls the transaction back and keeps the connection in the pool (both
// drivers can reset and validate a session), and the capture's own clearing
// of its mark fails. A plain UPDATE on that same pooled connection must
// still be captured by the triggers: the mark cannot outlive its
// transaction.
func TestCancelledLibraryCaptureLeavesNoMark(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		mt := newMaster(t, b)
		mt.install(t)
		mt.db.SetMaxOpenConns(1) // every statement below runs on one connection
		mt.exec(t, `INSERT INTO account (id, name) VALUES (1, 'Ada')`)
		if got := mt.published(t); len(got) != 1 {
			t.Fatalf("insert: %d events, want 1", len(got))
		}
		session := map[string]string{"postgres": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}[b.name]
		sessionID := func() int64 {
			t.Helper()
			var id int64
			if err := mt.db.QueryRowContext(t.Context(), session).Scan(&id); err != nil {
				t.Fatal(err)
			}
			return id
		}
		before := sessionID()
		// go-sql-driver/mysql keeps the connection after the rollback;
		// pgx's stdlib closes it (its mark is transaction-local anyway).
		sameSession := func() {
			t.Helper()
			if after := sessionID(); b.name == "mysql" && after != before {
				t.Fatalf("the pool replaced the connection (session %d, then %d): the test needs the same one", before, after)
			}
		}

		// The clock is read after the mark (cqrs_updated of the change):
		// there it cancels the capture's context and waits until
		// database/sql has rolled the transaction back.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var tx *sql.Tx
		m, err := cqrsync.NewMaster(mt.drv, &cqrsync.MasterConfig{Now: func() time.Time {
			if tx != nil && ctx.Err() == nil {
				cancel()
				cqrsynctesting.Eventually(t, 10*time.Second, "the rollback of the cancelled transaction", func() bool {
					_, err := tx.ExecContext(context.Background(), "SELECT 1")
					return errors.Is(err, sql.ErrTxDone)
				})
			}
			return mt.clock.Now()
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Register(accountModel()); err != nil {
			t.Fatal(err)
		}
		tx, err = mt.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = m.UpdateRow(ctx, tx, "account", 1, map[string]any{"name": "never"})
		if err == nil {
			t.Fatal("UpdateRow with its context cancelled mid-call succeeded")
		}
		if err := tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
			t.Fatalf("Rollback after the cancel = %v, want ErrTxDone", err)
		}
		sameSession()
		if got := mt.published(t); len(got) != 0 {
			t.Fatalf("the cancelled capture published %q", got)
		}

		if _, err := mt.db.ExecContext(t.Context(), `UPDATE account SET name = 'Ada L' WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		sameSession()
		got := mt.published(t)
		if len(got) != 1 {
			t.Fatalf("plain UPDATE on the connection of the cancelled capture: %d events, want 1 (a mark outlived its transaction)", len(got))
		}
		p, err := cqrsync.DecodePayload([]byte(got[0]), mt.pubAt)
		if err != nil {
			t.Fatal(err)
		}
		if rev, _ := p.Revision(); rev != 1 {
			t.Errorf("the plain UPDATE's event has revision %d, want 1", rev)
		}
	})
}

// TestNestedMarkOnMySQL marks a transaction twice, as a capture inside a
// capture's serializer would: the second mark does not fail, the writes
// while both are held are left alone, and after the first done has run
// the triggers capture again.
func TestNestedMarkOnMySQL(t *testing.T) {
	t.Parallel()
	mt := newMySQLMaster(t)
	b := mt.b
	mt.libraryTx(t, mt.clock.Now(), func(ctx context.Context, tx *sql.Tx) error {
		ex := sqldialect.FromSQL(tx)
		outer, err := sqldialect.MarkLibraryCapture(ctx, ex, b.dialect, "account", nil)
		if err != nil {
			return err
		}
		inner, err := sqldialect.MarkLibraryCapture(ctx, ex, b.dialect, "account", nil)
		if err != nil {
			return fmt.Errorf("second mark in one transaction: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO account (id, name) VALUES (1, 'marked')`); err != nil {
			return err
		}
		inner()
		outer()
		_, err = tx.ExecContext(ctx, `INSERT INTO account (id, name) VALUES (2, 'captured')`)
		return err
	})
	got := mt.published(t)
	if len(got) != 1 || !strings.Contains(got[0], `"captured"`) {
		t.Fatalf("events %q, want one, of the row inserted after the marks ended", got)
	}
}

// TestStaleMarkRowOnMySQL leaves a committed mark of the connection in the
// marks table, as nothing in cqrsync does: a library capture on that
// connection removes it with its own, and a later plain write there is
// captured.
func TestStaleMarkRowOnMySQL(t *testing.T) {
	t.Parallel()
	mt := newMySQLMaster(t)
	mt.db.SetMaxOpenConns(1)
	mt.exec(t, `INSERT INTO cqrs_capture_marks (conn_id) VALUES (CONNECTION_ID())`)
	mt.libraryTx(t, mt.clock.Now(), func(ctx context.Context, tx *sql.Tx) error {
		return mt.m.Insert(ctx, tx, "account", map[string]any{"id": 1, "name": "Ada"})
	})
	if got := mt.published(t); len(got) != 1 {
		t.Fatalf("library capture: %d events, want 1: %q", len(got), got)
	}
	mt.exec(t, `UPDATE account SET name = 'Ada L' WHERE id = 1`)
	if got := mt.published(t); len(got) != 1 {
		t.Fatalf("plain UPDATE after the library capture removed the stale mark: %d events, want 1", len(got))
	}
	var left int
	if err := mt.db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM cqrs_capture_marks`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("marks left: %d, %v", left, err)
	}
}

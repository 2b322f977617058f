package cqrsync_test

import (
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

const masterItemDDL = `CREATE TABLE item (
	id INTEGER PRIMARY KEY, name TEXT NOT NULL, active BOOLEAN NOT NULL DEFAULT 1,
	cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`

type masterBundle struct {
	db       *sql.DB
	master   *cqrsync.Master[*sql.Tx]
	notified int
}

func setupMaster(t *testing.T, models ...*cqrsync.MasterModel) *masterBundle {
	t.Helper()
	b := &masterBundle{db: cqrsynctesting.OpenSQLite(t, masterItemDDL)}
	var err error
	b.master, err = cqrsync.NewMaster(databasesql.New(b.db, sqldialect.SQLite()), &cqrsync.MasterConfig{Notify: func() { b.notified++ }})
	if err != nil {
		t.Fatal(err)
	}
	if len(models) == 0 {
		models = []*cqrsync.MasterModel{{CQRSID: "item", Table: "item"}}
	}
	for _, m := range models {
		if err := b.master.Register(m); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// outbox returns the bodies waiting in the outbox, as another connection
// sees them (committed only).
func (b *masterBundle) outbox(t *testing.T) []string {
	t.Helper()
	rows, err := b.db.QueryContext(t.Context(), "SELECT body FROM cqrs_outbox ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(body))
	}
	return out
}

func (b *masterBundle) inTx(t *testing.T, fn func(tx *sql.Tx) error) error {
	t.Helper()
	tx, err := b.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func TestMasterRollbackPublishesNothing(t *testing.T) {
	t.Parallel()
	b := setupMaster(t)
	tx, err := b.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO item (id, name) VALUES (1, 'a')"); err != nil {
		t.Fatal(err)
	}
	if err := b.master.Create(t.Context(), tx, "item", 1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := b.outbox(t); len(got) != 0 {
		t.Fatalf("outbox after rollback = %v, want empty", got)
	}
}

func TestMasterEventVisibleOnCommit(t *testing.T) {
	t.Parallel()
	b := setupMaster(t)
	tx, err := b.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec("INSERT INTO item (id, name) VALUES (1, 'a')"); err != nil {
		t.Fatal(err)
	}
	if err := b.master.Create(t.Context(), tx, "item", 1); err != nil {
		t.Fatal(err)
	}
	if b.notified != 1 {
		t.Fatalf("Notify called %d times, want 1", b.notified)
	}
	// WAL: another connection does not see the uncommitted event.
	other, err := b.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := other.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM cqrs_outbox").Scan(&n); err != nil || n != 0 {
		t.Fatalf("before commit another connection sees %d events (%v), want 0", n, err)
	}
	other.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := b.outbox(t)
	if len(got) != 1 || !strings.Contains(got[0], `"signal_type":"SAVE"`) || !strings.Contains(got[0], `"cqrs_revision":0`) {
		t.Fatalf("outbox after commit = %v, want one SAVE at revision 0", got)
	}
}

func TestMasterRevisions(t *testing.T) {
	t.Parallel()
	b := setupMaster(t)
	steps := []struct {
		name string
		fn   func(tx *sql.Tx) error
		want string
	}{
		{"create", func(tx *sql.Tx) error {
			if _, err := tx.Exec("INSERT INTO item (id, name) VALUES (1, 'a')"); err != nil {
				return err
			}
			return b.master.Create(t.Context(), tx, "item", 1)
		}, `"signal_type":"SAVE","cqrs_id":"item","instance_data":{"id":1,"name":"a","active":true,"cqrs_revision":0,`},
		{"update", func(tx *sql.Tx) error { return b.master.Update(t.Context(), tx, "item", 1) }, `"cqrs_revision":1,`},
		{"update again", func(tx *sql.Tx) error { return b.master.Update(t.Context(), tx, "item", 1) }, `"cqrs_revision":2,`},
		{"sync keeps the revision", func(tx *sql.Tx) error { return b.master.Sync(t.Context(), tx, "item", "", 1) }, `"signal_type":"SYNC","cqrs_id":"item","instance_data":{"id":1,"name":"a","active":true,"cqrs_revision":2,`},
		{"delete carries revision + 1", func(tx *sql.Tx) error { return b.master.Delete(t.Context(), tx, "item", 1) }, `"signal_type":"DELETE","cqrs_id":"item","instance_data":{"id":1,"cqrs_revision":3,`},
		{"re-create continues after the delete", func(tx *sql.Tx) error {
			if _, err := tx.Exec("INSERT INTO item (id, name) VALUES (1, 'b')"); err != nil {
				return err
			}
			return b.master.Create(t.Context(), tx, "item", 1)
		}, `"instance_data":{"id":1,"name":"b","active":true,"cqrs_revision":4,`},
	}
	for i, s := range steps {
		if err := b.inTx(t, s.fn); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := b.outbox(t)
		if len(got) != i+1 || !strings.Contains(got[i], s.want) {
			t.Fatalf("%s: event %q, want it to contain %q", s.name, got[len(got)-1], s.want)
		}
	}
}

func TestMasterModelOptions(t *testing.T) {
	t.Parallel()
	b := setupMaster(t,
		&cqrsync.MasterModel{CQRSID: "quiet", Table: "item", NoProduce: true},
		&cqrsync.MasterModel{CQRSID: "active_only", Table: "item", IsSyncInstance: func(row cqrsync.Object) bool {
			v, _ := row.Get("active")
			return v == true
		}},
		&cqrsync.MasterModel{CQRSID: "short", Table: "item", Fields: []string{"id", "name"}, MessageTTL: cqrsync.NoExpiry},
	)
	err := b.inTx(t, func(tx *sql.Tx) error {
		if _, err := tx.Exec("INSERT INTO item (id, name, active) VALUES (1, 'on', 1), (2, 'off', 0)"); err != nil {
			return err
		}
		for _, id := range []string{"quiet", "active_only", "short"} {
			if err := b.master.Create(t.Context(), tx, id, 1, 2); err != nil {
				return err
			}
		}
		return b.master.Delete(t.Context(), tx, "active_only", 2) // refused row: no DELETE either
	})
	if err != nil {
		t.Fatal(err)
	}
	got := b.outbox(t)
	if len(got) != 3 {
		t.Fatalf("outbox = %d events, want 3 (none from quiet, 1 from active_only, 2 from short): %v", len(got), got)
	}
	if !strings.Contains(got[0], `"cqrs_id":"active_only","instance_data":{"id":1,`) {
		t.Errorf("first event = %s, want active_only row 1", got[0])
	}
	if !strings.Contains(got[1], `"instance_data":{"id":1,"name":"on","cqrs_revision":0,"cqrs_updated":`) || !strings.Contains(got[1], `"expires":null`) {
		t.Errorf("short event = %s, want only id and name then the revision fields, and no expiry", got[1])
	}
}

func TestMasterErrors(t *testing.T) {
	t.Parallel()
	b := setupMaster(t)
	err := b.inTx(t, func(tx *sql.Tx) error { return b.master.Update(t.Context(), tx, "item", 42) })
	if !errors.Is(err, cqrsync.ErrRowNotFound) || !strings.Contains(err.Error(), "[42]") {
		t.Errorf("Update of a missing row = %v, want ErrRowNotFound naming the key", err)
	}
	// A Delete with a missing key deletes nothing, whether it names one key
	// (one DELETE … RETURNING) or several (read first): a caller that goes
	// on and commits keeps every row.
	err = b.inTx(t, func(tx *sql.Tx) error {
		if _, err := tx.Exec("INSERT INTO item (id, name, active) VALUES (1, 'kept', 1)"); err != nil {
			return err
		}
		if err := b.master.Create(t.Context(), tx, "item", 1); err != nil {
			return err
		}
		for _, keys := range [][]any{{42}, {1, 42}} {
			if err := b.master.Delete(t.Context(), tx, "item", keys...); !errors.Is(err, cqrsync.ErrRowNotFound) || !strings.Contains(err.Error(), "[42]") {
				t.Errorf("Delete(%v) with a missing key = %v, want ErrRowNotFound naming 42", keys, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.db.QueryRow("SELECT COUNT(*) FROM item WHERE id = 1").Scan(&n); err != nil || n != 1 {
		t.Errorf("rows with id 1 after failed Deletes = %d, %v; want 1", n, err)
	}
	if got := b.outbox(t); len(got) != 1 {
		t.Errorf("outbox = %d events, want only the create's: %v", len(got), got)
	}
	// One key that is there: deleted, with its revision plus one.
	err = b.inTx(t, func(tx *sql.Tx) error { return b.master.Delete(t.Context(), tx, "item", 1) })
	if err != nil {
		t.Fatal(err)
	}
	if got := b.outbox(t); len(got) != 2 || !strings.Contains(got[1], `"signal_type":"DELETE"`) || !strings.Contains(got[1], `"cqrs_revision":1`) {
		t.Errorf("outbox after Delete = %v, want a DELETE at revision 1", got)
	}
	err = b.inTx(t, func(tx *sql.Tx) error { return b.master.Create(t.Context(), tx, "nope", 1) })
	if !errors.Is(err, cqrsync.ErrUnknownModel) {
		t.Errorf("Create of an unknown model = %v, want ErrUnknownModel", err)
	}
	err = b.master.Register(&cqrsync.MasterModel{CQRSID: "a.b", Fields: []string{"name"}})
	for _, want := range []string{`CQRSID "a.b"`, "Table is empty", "must include the primary key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Register error %v does not mention %q", err, want)
		}
	}
	bad := setupMaster(t, &cqrsync.MasterModel{CQRSID: "t", Table: "no_such_table"})
	err = bad.inTx(t, func(tx *sql.Tx) error { return bad.master.Create(t.Context(), tx, "t", 1) })
	if !errors.Is(err, sqldialect.ErrNoTable) {
		t.Errorf("Create on a missing table = %v, want ErrNoTable", err)
	}
}

// UpdateRow on a model that does not produce: the row and its revision
// change, no event is written, and a missing key is ErrRowNotFound.
func TestMasterUpdateRowNoProduce(t *testing.T) {
	t.Parallel()
	b := setupMaster(t, &cqrsync.MasterModel{CQRSID: "item", Table: "item", NoProduce: true})
	err := b.inTx(t, func(tx *sql.Tx) error {
		if _, err := tx.Exec("INSERT INTO item (id, name, active) VALUES (1, 'a', 1)"); err != nil {
			return err
		}
		return b.master.UpdateRow(t.Context(), tx, "item", 1, map[string]any{"name": "b"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var rev int
	if err := b.db.QueryRow("SELECT name, cqrs_revision FROM item WHERE id = 1").Scan(&name, &rev); err != nil || name != "b" || rev != 1 {
		t.Fatalf("row = %q at revision %d, %v; want \"b\" at 1", name, rev, err)
	}
	if got := b.outbox(t); len(got) != 0 {
		t.Fatalf("outbox = %v, want nothing from a model that does not produce", got)
	}
	err = b.inTx(t, func(tx *sql.Tx) error {
		return b.master.UpdateRow(t.Context(), tx, "item", 2, map[string]any{"name": "b"})
	})
	if !errors.Is(err, cqrsync.ErrRowNotFound) {
		t.Fatalf("UpdateRow of a missing key = %v, want ErrRowNotFound", err)
	}
}

// TestConstructorsRefuseNoDriver: Master and Replica need a database
// driver, and say so.
func TestConstructorsRefuseNoDriver(t *testing.T) {
	t.Parallel()
	if _, err := cqrsync.NewMaster[*sql.Tx](nil, nil); err == nil || !strings.Contains(err.Error(), "databasesql.New") {
		t.Errorf("NewMaster(nil) = %v, want an error naming databasesql.New", err)
	}
	if _, err := cqrsync.NewReplica(nil, nil); err == nil || !strings.Contains(err.Error(), "databasesql.New") {
		t.Errorf("NewReplica(nil) = %v, want an error naming databasesql.New", err)
	}
}

// TestMasterModelLookup: Model returns what was registered, for tools that
// show it, and nothing for an unknown CQRS ID.
func TestMasterModelLookup(t *testing.T) {
	t.Parallel()
	b := setupMaster(t, &cqrsync.MasterModel{CQRSID: "item", Table: "item", Fields: []string{"id", "name"}})
	mm, ok := b.master.Model("item")
	if !ok || mm.Table != "item" || strings.Join(mm.Fields, ",") != "id,name" {
		t.Fatalf("Model(item) = %+v, %v; want the registered model", mm, ok)
	}
	if mm, ok := b.master.Model("nope"); ok || mm != nil {
		t.Fatalf("Model(nope) = %+v, %v; want nil, false", mm, ok)
	}
}

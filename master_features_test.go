package cqrsync_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

const authorDDL = `CREATE TABLE publisher (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, title TEXT NOT NULL)`

func TestMasterTrackedFields(t *testing.T) {
	t.Parallel()
	b := setupMaster(t, &cqrsync.MasterModel{CQRSID: "item", Table: "item", TrackedFields: []string{"name", "active"}})
	ctx := t.Context()
	create := func(tx *sql.Tx) error {
		if _, err := tx.Exec("INSERT INTO item (id, name, active) VALUES (1, 'a', 1)"); err != nil {
			return err
		}
		return b.master.Create(ctx, tx, "item", 1)
	}
	update := func(set string) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error {
			snap, err := b.master.Snapshot(ctx, tx, "item", 1)
			if err != nil {
				return err
			}
			if _, err := tx.Exec("UPDATE item SET " + set + " WHERE id = 1"); err != nil {
				return err
			}
			return b.master.UpdateWith(ctx, tx, "item", &cqrsync.UpdateOpts{Previous: snap}, 1)
		}
	}
	steps := []struct {
		name string
		fn   func(tx *sql.Tx) error
		want string
	}{
		{"create: tracked fields that are set, as null", create, `"previous_data":{"name":null,"active":null}`},
		{"update of a tracked field: its old value", update("name = 'b'"), `"previous_data":{"name":"a"}`},
		{"update of two", update("name = 'c', active = 0"), `"previous_data":{"name":"b","active":true}`},
		{"update of nothing tracked: {}", update("cqrs_updated = cqrs_updated"), `"previous_data":{}`},
		{"update without a snapshot: null", func(tx *sql.Tx) error { return b.master.Update(ctx, tx, "item", 1) }, `"previous_data":null`},
	}
	for i, s := range steps {
		if err := b.inTx(t, s.fn); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := b.outbox(t); len(got) != i+1 || !strings.Contains(got[i], s.want) {
			t.Fatalf("%s: event %s, want %s", s.name, got[len(got)-1], s.want)
		}
	}
}

func TestMasterPartialUpdates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		auto      bool
		withCQRS  bool
		wantEvent bool
	}{
		{"update_fields alone is not a synced change", false, false, false},
		{"update_cqrs_fields makes it one", false, true, true},
		{"AutoUpdateFields makes it one", true, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := cqrsynctesting.OpenSQLite(t, masterItemDDL, "INSERT INTO item (id, name) VALUES (1, 'a')")
			master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), &cqrsync.MasterConfig{AutoUpdateFields: c.auto})
			if err != nil {
				t.Fatal(err)
			}
			if err := master.Register(&cqrsync.MasterModel{CQRSID: "item", Table: "item"}); err != nil {
				t.Fatal(err)
			}
			tx, _ := db.Begin()
			_, _ = tx.Exec("UPDATE item SET name = 'b' WHERE id = 1")
			if err := master.UpdateWith(t.Context(), tx, "item", &cqrsync.UpdateOpts{Fields: []string{"name"}, UpdateCQRSFields: c.withCQRS}, 1); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			var events, rev int
			_ = db.QueryRow("SELECT COUNT(*) FROM cqrs_outbox").Scan(&events)
			_ = db.QueryRow("SELECT cqrs_revision FROM item WHERE id = 1").Scan(&rev)
			wantEvents, wantRev := 0, 0
			if c.wantEvent {
				wantEvents, wantRev = 1, 1
			}
			if events != wantEvents || rev != wantRev {
				t.Fatalf("events %d, revision %d; want %d and %d", events, rev, wantEvents, wantRev)
			}
		})
	}
}

// TestMasterSerializer: a custom serializer reads related rows inside the
// capture's transaction, once per batch, and cqrsync appends the revision
// fields; a DELETE carries the custom data.
func TestMasterSerializer(t *testing.T) {
	t.Parallel()
	calls := 0
	serializer := func(ctx context.Context, ex sqldialect.Executor, rows []cqrsync.Object) ([]cqrsync.Object, error) {
		calls++
		out := make([]cqrsync.Object, len(rows))
		for i, r := range rows {
			id, _ := r.Get("id")
			name, _ := r.Get("name")
			res, err := ex.Query(ctx, "SELECT id, title FROM book WHERE author_id = ? ORDER BY id", id)
			if err != nil {
				return nil, err
			}
			books := []any{}
			for res.Next() {
				var bid int64
				var title string
				if err := res.Scan(&bid, &title); err != nil {
					return nil, err
				}
				books = append(books, cqrsync.Object{{Key: "id", Value: bid}, {Key: "title", Value: title}})
			}
			res.Close()
			out[i] = cqrsync.Object{{Key: "id", Value: id}, {Key: "name", Value: name}, {Key: "books", Value: books}}
		}
		return out, nil
	}
	b := setupMaster(t, &cqrsync.MasterModel{CQRSID: "author", Table: "item", Serializer: serializer,
		CustomDeleteData: func(_ context.Context, row cqrsync.Object) (cqrsync.Object, error) {
			name, _ := row.Get("name")
			return cqrsync.Object{{Key: "name", Value: name}}, nil
		}})
	for _, stmt := range strings.Split(authorDDL, ";") {
		if _, err := b.db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	err := b.inTx(t, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO item (id, name) VALUES (1, 'Ann'), (2, 'Bob');
			INSERT INTO book (id, author_id, title) VALUES (1, 1, 'first'), (2, 1, 'second')`); err != nil {
			return err
		}
		return b.master.Create(t.Context(), tx, "author", 1, 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.inTx(t, func(tx *sql.Tx) error { return b.master.Delete(t.Context(), tx, "author", 2) }); err != nil {
		t.Fatal(err)
	}
	got := b.outbox(t)
	if calls != 1 || len(got) != 3 {
		t.Fatalf("serializer called %d times for a bulk create, %d events; want 1 call and 3 events", calls, len(got))
	}
	if !strings.Contains(got[0], `"instance_data":{"id":1,"name":"Ann","books":[{"id":1,"title":"first"},{"id":2,"title":"second"}],"cqrs_revision":0,"cqrs_updated":"`) {
		t.Errorf("serialized event = %s", got[0])
	}
	if !strings.Contains(got[2], `"instance_data":{"id":2,"cqrs_revision":1,"cqrs_updated":"`) || !strings.Contains(got[2], `","custom":{"name":"Bob"}}`) {
		t.Errorf("delete event = %s, want the custom data after the revision fields", got[2])
	}
}

func TestMasterSyncQuery(t *testing.T) {
	t.Parallel()
	b := setupMaster(t, &cqrsync.MasterModel{CQRSID: "item", Table: "item", IsSyncInstance: func(row cqrsync.Object) bool {
		name, _ := row.Get("name")
		return name != "n13"
	}})
	var values []string
	for i := 1; i <= 25; i++ {
		values = append(values, fmt.Sprintf("(%d, 'n%d', %d)", i, i, i%2))
	}
	if _, err := b.db.Exec("INSERT INTO item (id, name, active) VALUES " + strings.Join(values, ",")); err != nil {
		t.Fatal(err)
	}
	var progress []string
	n, err := b.master.SyncQuery(t.Context(), sqldialect.FromSQL(b.db), "item", &cqrsync.SyncOpts{
		Filter: `{"active": true, "id__gte": 3, "name__startswith": "n1"}`, Queue: "billing", BatchSize: 2,
		Progress: func(done, total int64) { progress = append(progress, fmt.Sprintf("%d/%d", done, total)) },
	})
	// Active ids >= 3 whose name starts with n1: 11, 13 (refused), 15, 17, 19.
	if err != nil || n != 5 {
		t.Fatalf("SyncQuery = %d, %v; want 5", n, err)
	}
	if strings.Join(progress, " ") != "2/5 4/5 5/5" {
		t.Errorf("progress = %v", progress)
	}
	got := b.outbox(t)
	if len(got) != 4 {
		t.Fatalf("outbox has %d events, want 4 (one row refused by IsSyncInstance)", len(got))
	}
	for i, id := range []int{11, 15, 17, 19} {
		if !strings.Contains(got[i], fmt.Sprintf(`"signal_type":"SYNC","cqrs_id":"item","instance_data":{"id":%d,`, id)) {
			t.Errorf("event %d = %s, want a SYNC of %d", i, got[i], id)
		}
	}
	var queue string
	_ = b.db.QueryRow("SELECT queue FROM cqrs_outbox LIMIT 1").Scan(&queue)
	if queue != "billing" {
		t.Errorf("queue = %q, want billing", queue)
	}
	_, err = b.master.SyncQuery(t.Context(), sqldialect.FromSQL(b.db), "item", &cqrsync.SyncOpts{Filter: `{"nope__in": [1]}`})
	if !errors.Is(err, cqrsync.ErrBadFilter) || !strings.Contains(err.Error(), `no column "nope"`) {
		t.Errorf("SyncQuery with an unknown column = %v, want ErrBadFilter naming it", err)
	}
}

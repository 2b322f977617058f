package cqrsync_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

const scanDDL = `CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMP);
INSERT INTO item (id, name, cqrs_revision, cqrs_updated) VALUES
 (1, 'a', 0, '2024-01-01 00:00:00'), (2, 'b', 3, '2024-01-01 00:00:00'), (3, 'c', 1, '2024-01-01 00:00:00'),
 (4, 'd', 0, '2024-01-01 00:00:00'), (5, 'e', 2, '2024-01-01 00:00:00')`

// TestMasterScan: keyset pages of the rows a filter selects, with progress
// against the count, and instance_data only when asked for.
func TestMasterScan(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t, scanDDL)
	master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "item", Table: "item", Fields: []string{"id"}}); err != nil {
		t.Fatal(err)
	}
	if mm, ok := master.Model("item"); !ok || mm.Table != "item" {
		t.Fatalf("Model(item) = %v, %v", mm, ok)
	}
	if _, ok := master.Model("other"); ok {
		t.Fatal("Model(other) found a model")
	}
	ex := sqldialect.FromSQL(db)
	for _, withData := range []bool{false, true} {
		var pages, progress []string
		opts := &cqrsync.ScanOpts{Filter: `{"id__gt": 1}`, BatchSize: 3, InstanceData: withData,
			Progress: func(done, total int64) { progress = append(progress, fmt.Sprintf("%d/%d", done, total)) }}
		err := master.Scan(t.Context(), ex, "item", opts, func(page []cqrsync.MasterRow) error {
			var s []string
			for _, r := range page {
				name, _ := r.Columns.Get("name")
				s = append(s, fmt.Sprintf("%v:%v", r.PK, name))
				if (r.InstanceData != nil) != withData {
					t.Errorf("InstanceData = %v with ScanOpts.InstanceData %v", r.InstanceData, withData)
				}
				if withData && len(r.InstanceData) != 3 { // id, cqrs_revision, cqrs_updated
					t.Errorf("InstanceData = %v, want the model's field and the version columns", r.InstanceData)
				}
			}
			pages = append(pages, fmt.Sprint(s))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(pages) != "[[2:b 3:c 4:d] [5:e]]" || fmt.Sprint(progress) != "[3/4 4/4]" {
			t.Fatalf("pages %v, progress %v; want [[2:b 3:c 4:d] [5:e]] and [3/4 4/4]", pages, progress)
		}
	}
	stop := errors.New("stop")
	if err := master.Scan(t.Context(), ex, "item", nil, func([]cqrsync.MasterRow) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Scan returned %v, want the error of fn", err)
	}
	if err := master.Scan(t.Context(), ex, "other", nil, nil); !errors.Is(err, cqrsync.ErrUnknownModel) {
		t.Fatalf("Scan of an unknown model = %v, want ErrUnknownModel", err)
	}

	gone, err := master.MissingKeys(t.Context(), ex, "item", []any{int64(1), "2", 99.0, int64(100)})
	if err != nil || fmt.Sprint(gone) != "[99 100]" {
		t.Fatalf("MissingKeys = %v, %v; want [99 100]", gone, err)
	}
	if _, err := master.MissingKeys(t.Context(), ex, "item", []any{"abc"}); !errors.Is(err, cqrsync.ErrInvalidValue) {
		t.Fatalf("MissingKeys of a key that is not an integer = %v, want ErrInvalidValue", err)
	}
}

// TestReplicaKeys: the replica's keys in pages, their stored revisions,
// and their deletion, with keys as a diff stream carries them.
func TestReplicaKeys(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t, scanDDL)
	replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "item", Table: "item"}); err != nil {
		t.Fatal(err)
	}
	ex := sqldialect.FromSQL(db)
	var pages [][]any
	err = replica.ScanKeys(t.Context(), ex, "item", &cqrsync.ScanOpts{Filter: `{"name__in": ["a", "c", "d", "e"]}`, BatchSize: 2}, func(keys []any) error {
		pages = append(pages, keys)
		return nil
	})
	if err != nil || fmt.Sprint(pages) != "[[1 3] [4 5]]" {
		t.Fatalf("ScanKeys pages = %v, %v; want [[1 3] [4 5]]", pages, err)
	}
	revs, err := replica.Revisions(t.Context(), ex, "item", []any{int64(2), "5", int64(99)})
	if err != nil || fmt.Sprint(revs) != "[3 2 -1]" {
		t.Fatalf("Revisions = %v, %v; want [3 2 -1]", revs, err)
	}
	if _, err := replica.Revisions(t.Context(), ex, "item", []any{"x"}); !errors.Is(err, cqrsync.ErrInvalidValue) {
		t.Fatalf("Revisions of a key that is not an integer = %v, want ErrInvalidValue", err)
	}
	if n, err := replica.DeleteKeys(t.Context(), ex, "item", []any{int64(1), "x"}); n != 0 || !errors.Is(err, cqrsync.ErrInvalidValue) {
		t.Fatalf("DeleteKeys with a bad key = %d, %v; want 0 and ErrInvalidValue", n, err)
	}
	if n, err := replica.DeleteKeys(t.Context(), ex, "item", []any{int64(1), "2", int64(99)}); n != 2 || err != nil {
		t.Fatalf("DeleteKeys = %d, %v; want 2", n, err)
	}
	var left int
	if err := db.QueryRow(`SELECT COUNT(*) FROM item`).Scan(&left); err != nil || left != 3 {
		t.Fatalf("rows left = %d, %v; want 3", left, err)
	}
	if _, err := replica.Revisions(t.Context(), ex, "other", nil); !errors.Is(err, cqrsync.ErrUnknownModel) {
		t.Fatalf("Revisions of an unknown model = %v, want ErrUnknownModel", err)
	}
}

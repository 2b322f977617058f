package tools_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
)

// djangoPair is a master and a replica of djpeer_basic on SQLite, the
// replica loaded from django-cqrs's captured bulk dump.
type djangoPair struct {
	masterDB, replicaDB *sql.DB
	master              *cqrsync.Master[*sql.Tx]
	replica             *cqrsync.Replica
	dump                []byte
}

func setupDjangoPair(t *testing.T) *djangoPair {
	t.Helper()
	dump, err := os.ReadFile(filepath.Join(cqrsynctesting.VectorsDir(t), "cmd_cqrs_bulk_dump_basic.dump"))
	if err != nil {
		t.Fatal(err)
	}
	p := &djangoPair{dump: dump}
	p.replicaDB = cqrsynctesting.OpenSQLite(t, cqrsynctesting.ReplicaBasicDDL)
	p.masterDB = cqrsynctesting.OpenSQLite(t, cqrsynctesting.VectorTables["djpeer_basic"])
	p.replica, err = cqrsync.NewReplica(databasesql.New(p.replicaDB, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: map[string]cqrsync.ValueType{"decimal_field": cqrsync.TypeDecimal}}); err != nil {
		t.Fatal(err)
	}
	p.master, err = cqrsync.NewMaster(databasesql.New(p.masterDB, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.master.Register(&cqrsync.MasterModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: map[string]cqrsync.ValueType{"decimal_field": cqrsync.TypeDecimal}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBulkLoadDjangoDumpAndDumpItBack loads django-cqrs's dump into a table
// and dumps it again: the bytes must be the same.
func TestBulkLoadDjangoDumpAndDumpItBack(t *testing.T) {
	t.Parallel()
	p := setupDjangoPair(t)
	// Load into the master-shaped table, then dump it as a master would.
	loader, _ := cqrsync.NewReplica(databasesql.New(p.masterDB, sqldialect.SQLite()), nil)
	_ = loader.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: map[string]cqrsync.ValueType{"decimal_field": cqrsync.TypeDecimal}})
	res, err := tools.Load(t.Context(), loader, bytes.NewReader(p.dump), &tools.LoadOpts{BatchSize: 5})
	if err != nil || res.Loaded != 22 || res.Skipped != 0 || res.Committed != 22 {
		t.Fatalf("load = %+v, %v; want 22 loaded", res, err)
	}
	var out bytes.Buffer
	written, processed, err := tools.Dump(t.Context(), p.master, sqldialect.FromSQL(p.masterDB), "djpeer_basic", &out, &tools.DumpOpts{BatchSize: 4})
	if err != nil || written != 22 || processed != 22 {
		t.Fatalf("dump = %d/%d, %v; want 22/22", written, processed, err)
	}
	if !bytes.Equal(out.Bytes(), p.dump) {
		gotLines, wantLines := strings.Split(out.String(), "\n"), strings.Split(string(p.dump), "\n")
		for i := range min(len(gotLines), len(wantLines)) {
			if gotLines[i] != wantLines[i] {
				t.Fatalf("line %d differs:\n got %s\nwant %s", i+1, gotLines[i], wantLines[i])
			}
		}
		t.Fatalf("dump has %d lines, django-cqrs's %d", len(gotLines), len(wantLines))
	}
	// Loading again changes nothing: every row is a duplicate.
	res, err = tools.Load(t.Context(), loader, bytes.NewReader(p.dump), nil)
	if err != nil || res.Loaded != 0 || res.Unchanged != 22 {
		t.Fatalf("second load = %+v, %v; want 22 unchanged", res, err)
	}
}

func TestBulkLoadBadInput(t *testing.T) {
	t.Parallel()
	p := setupDjangoPair(t)
	lines := strings.Split(string(p.dump), "\n")
	// Line 3 is not JSON, line 5 lacks a required field, the rest are fine.
	lines[2] = `{"id": 2, truncated`
	lines[4] = `{"id":4,"cqrs_revision":0,"cqrs_updated":"2024-01-01 00:00:00+00:00"}`
	var bad []string
	res, err := tools.Load(t.Context(), p.replica, strings.NewReader(strings.Join(lines, "\n")), &tools.LoadOpts{
		BatchSize: 3, OnBadLine: func(line int, err error) { bad = append(bad, fmt.Sprintf("%d: %v", line, err)) },
	})
	if err != nil || res.Loaded != 20 || res.Skipped != 2 {
		t.Fatalf("load = %+v, %v; want 20 loaded and 2 skipped", res, err)
	}
	if len(bad) != 2 || !strings.HasPrefix(bad[0], "3: ") || !strings.HasPrefix(bad[1], "5: ") || !strings.Contains(bad[1], "int_field") {
		t.Fatalf("bad lines = %q", bad)
	}
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", "input is empty"},
		{"unknown model", "nope\n{}", `"nope" is not a CQRS ID registered`},
	} {
		if _, err := tools.Load(t.Context(), p.replica, strings.NewReader(c.in), nil); !errors.Is(err, tools.ErrBadDump) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: load = %v, want ErrBadDump mentioning %q", c.name, err, c.want)
		}
	}
}

func TestBulkLoadClear(t *testing.T) {
	t.Parallel()
	p := setupDjangoPair(t)
	if _, err := p.replicaDB.Exec(`INSERT INTO djpeer_basic (id, cqrs_revision, cqrs_updated, int_field, char_field, bool_field) VALUES (999, 9, '2024-01-01 00:00:00+00:00', 1, 'extra', 0)`); err != nil {
		t.Fatal(err)
	}
	for _, clear := range []bool{false, true} {
		if _, err := tools.Load(t.Context(), p.replica, bytes.NewReader(p.dump), &tools.LoadOpts{Clear: clear}); err != nil {
			t.Fatal(err)
		}
		var n int
		_ = p.replicaDB.QueryRow("SELECT COUNT(*) FROM djpeer_basic").Scan(&n)
		if want := map[bool]int{false: 23, true: 22}[clear]; n != want {
			t.Fatalf("after a load with Clear=%v the table has %d rows, want %d", clear, n, want)
		}
	}
}

var headerTime = regexp.MustCompile(`^(\w+),\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00`)

// TestDiffPipelineMatchesDjango replays cmd_diff_flow.json's drift (a
// stale row, a missing row, an extra row) and checks each stage's stream
// against the one django-cqrs printed, then that the repair converges.
func TestDiffPipelineMatchesDjango(t *testing.T) {
	t.Parallel()
	p := setupDjangoPair(t)
	ctx := t.Context()
	for _, db := range []*sql.DB{p.masterDB, p.replicaDB} {
		loader, _ := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), nil)
		_ = loader.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic"})
		if _, err := tools.Load(ctx, loader, bytes.NewReader(p.dump), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{
		`UPDATE djpeer_basic SET cqrs_revision = cqrs_revision - 1 WHERE id = 5`,
		`DELETE FROM djpeer_basic WHERE id = 1`,
		`INSERT INTO djpeer_basic (id, cqrs_revision, cqrs_updated, int_field, char_field, bool_field) VALUES (999999, 0, '2024-01-01 00:00:00+00:00', 0, 'replica-only', 0)`,
	} {
		if _, err := p.replicaDB.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	vectors := cqrsynctesting.VectorsDir(t)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(vectors, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sameStream := func(stage, got, want string) {
		t.Helper()
		got, want = headerTime.ReplaceAllString(got, "$1,<now>"), headerTime.ReplaceAllString(want, "$1,<now>")
		if got != want {
			t.Fatalf("%s stream differs from django-cqrs's:\n got %q\nwant %q", stage, got, want)
		}
	}
	masterEx, replicaEx := sqldialect.FromSQL(p.masterDB), sqldialect.FromSQL(p.replicaDB)

	var diffMaster bytes.Buffer
	if err := tools.DiffMaster(ctx, p.master, masterEx, "djpeer_basic", &diffMaster, &tools.DiffOpts{BatchSize: 5}); err != nil {
		t.Fatal(err)
	}
	sameStream("diff-master", diffMaster.String(), read("cmd_cqrs_diff_master.txt"))

	var diffReplica bytes.Buffer
	keys, err := tools.DiffReplica(ctx, p.replica, replicaEx, "djpeer_replica", bytes.NewReader(diffMaster.Bytes()), &diffReplica)
	if err != nil || fmt.Sprint(keys) != "[1 5]" {
		t.Fatalf("diff-replica keys = %v, %v; want [1 5]", keys, err)
	}
	sameStream("diff-replica", diffReplica.String(), read("cmd_cqrs_diff_replica.txt"))

	synced, processed, err := tools.DiffSync(ctx, p.master, masterEx, bytes.NewReader(diffReplica.Bytes()))
	if err != nil || synced != 2 || processed != 2 {
		t.Fatalf("diff-sync = %d/%d, %v; want 2/2", synced, processed, err)
	}
	var queue string
	var body []byte
	if err := p.masterDB.QueryRow("SELECT queue, body FROM cqrs_outbox ORDER BY id LIMIT 1").Scan(&queue, &body); err != nil || queue != "djpeer_replica" || !bytes.Contains(body, []byte(`"signal_type":"SYNC","cqrs_id":"djpeer_basic","instance_data":{"id":1,`)) {
		t.Fatalf("diff-sync event: queue %q body %s (%v); want a SYNC of row 1 to djpeer_replica", queue, body, err)
	}

	var deletedReplica bytes.Buffer
	if err := tools.DeletedDiffReplica(ctx, p.replica, replicaEx, "djpeer_basic", &deletedReplica, &tools.DiffOpts{BatchSize: 5}); err != nil {
		t.Fatal(err)
	}
	// django-cqrs lists keys in no particular order; cqrsync in key order.
	if !strings.Contains(deletedReplica.String(), "999999]") {
		t.Fatalf("deleted-diff-replica = %q, want the extra key", deletedReplica.String())
	}
	var deletedMaster bytes.Buffer
	gone, err := tools.DeletedDiffMaster(ctx, p.master, masterEx, bytes.NewReader(deletedReplica.Bytes()), &deletedMaster)
	if err != nil || fmt.Sprint(gone) != "[999999]" {
		t.Fatalf("deleted-diff-master = %v, %v; want [999999]", gone, err)
	}
	sameStream("deleted-diff-master", deletedMaster.String(), read("cmd_cqrs_deleted_diff_master.txt"))
	// django-cqrs's own replica stream goes through our master too.
	gone, err = tools.DeletedDiffMaster(ctx, p.master, masterEx, strings.NewReader(read("cmd_cqrs_deleted_diff_replica.txt")), &bytes.Buffer{})
	if err != nil || fmt.Sprint(gone) != "[999999]" {
		t.Fatalf("deleted-diff-master on django-cqrs's stream = %v, %v; want [999999]", gone, err)
	}
	n, err := tools.DeletedSyncReplica(ctx, p.replica, replicaEx, bytes.NewReader(deletedMaster.Bytes()))
	if err != nil || n != 1 {
		t.Fatalf("deleted-sync-replica = %d, %v; want 1", n, err)
	}

	for _, bad := range []string{"", "no comma\n", "djpeer_basic,now\nnot json\n"} {
		if _, err := tools.DiffReplica(ctx, p.replica, replicaEx, "q", strings.NewReader(bad), &bytes.Buffer{}); err == nil {
			t.Errorf("diff-replica accepted %q", bad)
		}
	}
}

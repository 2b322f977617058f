package tools_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
)

// loadedPair is djangoPair with django-cqrs's dump loaded on both sides:
// a converged master and replica.
func loadedPair(t *testing.T) *djangoPair {
	t.Helper()
	p := setupDjangoPair(t)
	if _, err := tools.Load(t.Context(), p.replica, bytes.NewReader(p.dump), nil); err != nil {
		t.Fatal(err)
	}
	loader, _ := cqrsync.NewReplica(databasesql.New(p.masterDB, sqldialect.SQLite()), nil)
	_ = loader.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: map[string]cqrsync.ValueType{"decimal_field": cqrsync.TypeDecimal}})
	if _, err := tools.Load(t.Context(), loader, bytes.NewReader(p.dump), nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *djangoPair) sides() (*tools.LocalMaster, *tools.LocalReplica) {
	return tools.NewLocalMaster(p.master, sqldialect.FromSQL(p.masterDB)), tools.NewLocalReplica(p.replica, sqldialect.FromSQL(p.replicaDB))
}

// TestVerifyFindsContentDrift edits replica rows behind the replica's back
// (revision untouched), deletes one and adds one: Verify reports exactly
// those keys, which the revision-based diff does not see in full.
// The master is reached directly and through VerifyHandler over HTTP.
func TestVerifyFindsContentDrift(t *testing.T) {
	t.Parallel()
	for _, remote := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "http"}[remote], func(t *testing.T) {
			t.Parallel()
			testVerifyFindsContentDrift(t, remote)
		})
	}
}

func testVerifyFindsContentDrift(t *testing.T, remote bool) {
	p := loadedPair(t)
	local, r := p.sides()
	var m tools.MasterSide = local
	if remote {
		srv := httptest.NewServer(tools.VerifyHandler(local))
		t.Cleanup(srv.Close)
		client := tools.NewVerifyClient(srv.URL, srv.Client())
		t.Cleanup(srv.Client().CloseIdleConnections)
		m = client
	}
	opts := &tools.VerifyOpts{Sizes: []int{8, 3}}
	rep, err := tools.Verify(t.Context(), m, r, "djpeer_basic", opts)
	if err != nil || !rep.Clean() {
		t.Fatalf("converged pair: verify = %+v, %v; want clean", rep, err)
	}
	if rep.MasterRows < 22 || rep.ReplicaRows < 22 {
		t.Fatalf("rows read = %d/%d, want every row of both", rep.MasterRows, rep.ReplicaRows)
	}
	for _, q := range []string{
		`UPDATE djpeer_basic SET char_field = 'edited by hand' WHERE id = 3`,
		`UPDATE djpeer_basic SET int_field = int_field + 1, nullable_char = 'x' WHERE id = 20`,
		`DELETE FROM djpeer_basic WHERE id = 7`,
		`INSERT INTO djpeer_basic (id, cqrs_revision, cqrs_updated, int_field, char_field, bool_field) VALUES (999999, 0, '2024-01-01 00:00:00+00:00', 0, 'replica-only', 0)`,
	} {
		if _, err := p.replicaDB.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = tools.Verify(t.Context(), m, r, "djpeer_basic", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rep.Differ, rep.DifferFields, rep.Missing, rep.Extra); got != "[3 20] [[char_field] [int_field nullable_char]] [7] [999999]" {
		t.Fatalf("verify found %s; want differ [3 20] (char_field; int_field, nullable_char), missing [7], extra [999999]", got)
	}

	// Repair: SYNCs of 3, 20 and 7 to the replica's queue, 999999 deleted.
	opts.Repair, opts.Queue = true, "djpeer_replica"
	rep, err = tools.Verify(t.Context(), m, r, "djpeer_basic", opts)
	if err != nil || rep.Resynced != 3 || rep.Deleted != 1 {
		t.Fatalf("repair = %+v, %v; want 3 resynced, 1 deleted", rep, err)
	}
	var n int
	if err := p.masterDB.QueryRow(`SELECT COUNT(*) FROM cqrs_outbox WHERE queue = 'djpeer_replica'`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("outbox holds %d SYNCs to djpeer_replica (%v), want 3", n, err)
	}
}

// TestVerifyMappedReplica compares only the fields a replica maps, under
// their master names, and finds a value the replica's column cut.
func TestVerifyMappedReplica(t *testing.T) {
	t.Parallel()
	p := loadedPair(t)
	if _, err := p.replicaDB.Exec(`CREATE TABLE mapped (pk INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL, title TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.replicaDB.Exec(`INSERT INTO mapped SELECT id, cqrs_revision, cqrs_updated, char_field FROM djpeer_basic`); err != nil {
		t.Fatal(err)
	}
	rr, _ := cqrsync.NewReplica(databasesql.New(p.replicaDB, sqldialect.SQLite()), nil)
	if err := rr.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "mapped", PK: "pk", Mapping: map[string]string{"id": "pk", "char_field": "title"}}); err != nil {
		t.Fatal(err)
	}
	m := tools.NewLocalMaster(p.master, sqldialect.FromSQL(p.masterDB))
	r := tools.NewLocalReplica(rr, sqldialect.FromSQL(p.replicaDB))
	rep, err := tools.Verify(t.Context(), m, r, "djpeer_basic", nil)
	if err != nil || !rep.Clean() || fmt.Sprint(rep.Fields) != "[char_field id cqrs_revision]" {
		t.Fatalf("mapped replica: verify = %+v, %v; want clean over [char_field id cqrs_revision]", rep, err)
	}
	if _, err := p.replicaDB.Exec(`UPDATE mapped SET title = substr(title, 1, 2) WHERE pk = 16`); err != nil {
		t.Fatal(err)
	}
	rep, err = tools.Verify(t.Context(), m, r, "djpeer_basic", nil)
	if err != nil || fmt.Sprint(rep.Differ, rep.DifferFields) != "[16] [[char_field]]" {
		t.Fatalf("verify = %+v, %v; want row 16's char_field", rep, err)
	}
}

// TestVerifyTextKeys checks a model keyed by text, whose ranges the
// replica reads bound by bound.
func TestVerifyTextKeys(t *testing.T) {
	t.Parallel()
	const ddl = `CREATE TABLE code (id TEXT PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMP NOT NULL, label TEXT NOT NULL)`
	masterDB, replicaDB := cqrsynctesting.OpenSQLite(t, ddl), cqrsynctesting.OpenSQLite(t, ddl)
	for _, db := range []*sql.DB{masterDB, replicaDB} {
		if _, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
			INSERT INTO code SELECT printf('k%04d', i), 1, '2026-01-01 00:00:00', 'label ' || i FROM n`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := replicaDB.Exec(`UPDATE code SET label = 'x' WHERE id IN ('k0005', 'k0150')`); err != nil {
		t.Fatal(err)
	}
	master, _ := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.SQLite()), nil)
	_ = master.Register(&cqrsync.MasterModel{CQRSID: "code", Table: "code"})
	replica, _ := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.SQLite()), nil)
	_ = replica.Register(&cqrsync.ReplicaModel{CQRSID: "code", Table: "code"})
	rep, err := tools.Verify(t.Context(), tools.NewLocalMaster(master, sqldialect.FromSQL(masterDB)), tools.NewLocalReplica(replica, sqldialect.FromSQL(replicaDB)),
		"code", &tools.VerifyOpts{Sizes: []int{32, 4}})
	if err != nil || fmt.Sprint(rep.Differ, rep.Missing, rep.Extra) != "[k0005 k0150] [] []" {
		t.Fatalf("verify = %+v, %v; want k0005 and k0150", rep, err)
	}
}

// TestVerifyHandlerErrors: the handler says what is wrong, and the client
// passes it on.
func TestVerifyHandlerErrors(t *testing.T) {
	t.Parallel()
	p := loadedPair(t)
	local, r := p.sides()
	srv := httptest.NewServer(tools.VerifyHandler(local))
	t.Cleanup(srv.Close)
	t.Cleanup(srv.Client().CloseIdleConnections)
	for _, c := range []struct {
		method, body string
		code         int
		want         string
	}{
		{"GET", "", http.StatusMethodNotAllowed, "POST a JSON request"},
		{"POST", "nope", http.StatusBadRequest, "not a JSON request"},
		{"POST", `{"op":"drop"}`, http.StatusBadRequest, "unknown op"},
		{"POST", `{"op":"buckets","cqrs_id":"djpeer_basic","size":4,"after":"{"}`, http.StatusBadRequest, "bad filter"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), c.method, srv.URL, strings.NewReader(c.body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("%s %s: %d %s; want %d mentioning %q", c.method, c.body, resp.StatusCode, body, c.code, c.want)
		}
	}
	client := tools.NewVerifyClient(srv.URL, srv.Client())
	if _, err := tools.Verify(t.Context(), client, r, "nope", nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("verify of an unknown model = %v; want an error naming it", err)
	}
	if _, err := tools.Verify(t.Context(), client, r, "djpeer_basic", &tools.VerifyOpts{Repair: true}); err == nil || !strings.Contains(err.Error(), "Queue") {
		t.Errorf("repair without a queue = %v; want an error asking for it", err)
	}
}

package cqrsync_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
)

// TestMasterFieldNamesDjangoFK: a table whose foreign key column is
// owner_id, registered with FieldNames {owner_id: owner}, publishes the
// bytes django-cqrs published for its tracked model (tracked_update_fk:
// "owner" in instance_data and previous_data), and its dumps and SYNCs use
// the same name.
func TestMasterFieldNamesDjangoFK(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	data, err := os.ReadFile(filepath.Join(cqrsynctesting.VectorsDir(t), "tracked_update_fk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vc vectorCase
	if err := json.Unmarshal(data, &vc); err != nil {
		t.Fatal(err)
	}
	want := vc.Messages[0].Body
	wantP, err := cqrsync.DecodePayload([]byte(want), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	updated, _ := wantP.Updated()

	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE djpeer_tracked (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME,
		name VARCHAR(200) NOT NULL, status VARCHAR(20) NOT NULL, counter INTEGER NOT NULL, owner_id INTEGER)`)
	master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), &cqrsync.MasterConfig{Now: func() time.Time { return updated }})
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "djpeer_tracked", Table: "djpeer_tracked",
		FieldNames: map[string]string{"owner_id": "owner"}, TrackedFields: []string{"name", "status", "owner_id"}}); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // test cleanup
	if _, err := tx.Exec(`INSERT INTO djpeer_tracked VALUES (5, 0, '2026-11-23 15:03:19', 'case:tracked_update_fk', 'new', 0, 4)`); err != nil {
		t.Fatal(err)
	}
	snap, err := master.Snapshot(ctx, tx, "djpeer_tracked", 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE djpeer_tracked SET owner_id = 5 WHERE id = 5`); err != nil {
		t.Fatal(err)
	}
	if err := master.UpdateWith(ctx, tx, "djpeer_tracked", &cqrsync.UpdateOpts{Previous: snap}, 5); err != nil {
		t.Fatal(err)
	}
	if err := master.Sync(ctx, tx, "djpeer_tracked", "", 5); err != nil {
		t.Fatal(err)
	}
	events, err := sqldialect.SQLite().ClaimOutbox(ctx, sqldialect.FromSQL(tx), &sqldialect.ClaimOutboxParams{Limit: 10, Now: time.Now(), LeaseUntil: time.Now().Add(time.Minute)})
	if err != nil || len(events) != 2 {
		t.Fatalf("outbox: %d events, %v", len(events), err)
	}
	got, err := cqrsync.DecodePayload(events[0].Body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got.Expires = wantP.Expires
	body, _ := got.AppendJSON(nil)
	if string(body) != want {
		t.Fatalf("SAVE differs from django-cqrs's\n got: %s\nwant: %s", body, want)
	}
	sync, _ := cqrsync.DecodePayload(events[1].Body, time.Now())
	syncData, _ := sync.InstanceData.MarshalJSON()
	wantData, _ := wantP.InstanceData.MarshalJSON()
	if !bytes.Equal(syncData, wantData) {
		t.Fatalf("SYNC instance_data %s, want %s", syncData, wantData)
	}
	var dump bytes.Buffer
	if _, _, err := tools.Dump(ctx, master, sqldialect.FromSQL(tx), "djpeer_tracked", &dump, nil); err != nil {
		t.Fatal(err)
	}
	if line := strings.Split(dump.String(), "\n")[1]; line != string(wantData) {
		t.Fatalf("dump line %s, want %s", line, wantData)
	}
}

// TestMasterFieldNamesRefused: renames that would merge two keys or rename
// the version columns are refused.
func TestMasterFieldNamesRefused(t *testing.T) {
	t.Parallel()
	master, err := cqrsync.NewMaster(databasesql.New(cqrsynctesting.OpenSQLite(t), sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	for names, want := range map[string]map[string]string{
		"keep their names":    {"cqrs_revision": "rev"},
		`both become "owner"`: {"owner_id": "owner", "owner_pk": "owner"},
		"wire name is empty":  {"owner_id": ""},
	} {
		err := master.Register(&cqrsync.MasterModel{CQRSID: "m", Table: "m", FieldNames: want})
		if err == nil || !strings.Contains(err.Error(), names) {
			t.Errorf("FieldNames %v: Register = %v, want an error naming %q", want, err, names)
		}
	}
	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE clash (id INTEGER PRIMARY KEY, owner INTEGER, owner_id INTEGER, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "clash", Table: "clash", FieldNames: map[string]string{"owner_id": "owner"}}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, _, err = tools.Dump(t.Context(), master, sqldialect.FromSQL(db), "clash", &out, nil)
	if !errors.Is(err, cqrsync.ErrSchema) || !strings.Contains(err.Error(), "sends its own column owner too") {
		t.Fatalf("Dump with a clashing rename = %v", err)
	}
}

// TestDumpWritesRowsRefusedBySyncCheck: as django-cqrs's cqrs_bulk_dump, a
// dump writes every row, those IsSyncInstance refuses too; SkipRefused
// (sync --dry-run) counts only those a SYNC would send.
func TestDumpWritesRowsRefusedBySyncCheck(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t, vectorTables["djpeer_filtered"],
		`INSERT INTO djpeer_filtered VALUES (1, 0, '2024-01-01 00:00:00', 'on', 1), (2, 0, '2024-01-01 00:00:00', 'off', 0)`)
	master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range vectorModels {
		if err := master.Register(m); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	written, processed, err := tools.Dump(t.Context(), master, sqldialect.FromSQL(db), "djpeer_filtered", &out, nil)
	if err != nil || written != 2 || processed != 2 || strings.Count(out.String(), "\n") != 2 {
		t.Fatalf("Dump = %d written, %d processed, %v:\n%s", written, processed, err, out.String())
	}
	written, processed, err = tools.Dump(t.Context(), master, sqldialect.FromSQL(db), "djpeer_filtered", io.Discard, &tools.DumpOpts{SkipRefused: true})
	if err != nil || written != 1 || processed != 2 {
		t.Fatalf("Dump with SkipRefused = %d written, %d processed, %v", written, processed, err)
	}
}

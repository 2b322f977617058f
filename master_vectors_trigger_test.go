package cqrsync_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/capture/trigger"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// The vector models' tables on PostgreSQL.
var pgVectorTables = []string{
	`CREATE TABLE djpeer_basic (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ,
		int_field INTEGER NOT NULL DEFAULT 0, char_field VARCHAR(200) NOT NULL DEFAULT '',
		date_field DATE, datetime_field TIMESTAMPTZ, bool_field BOOLEAN NOT NULL DEFAULT false,
		nullable_int INTEGER, nullable_char VARCHAR(200), uuid_field UUID,
		decimal_field NUMERIC(14,4), float_field DOUBLE PRECISION, json_field JSON)`,
	`CREATE TABLE djpeer_mapped (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ,
		name VARCHAR(200) NOT NULL DEFAULT '', amount INTEGER NOT NULL DEFAULT 0, secret VARCHAR(200) NOT NULL DEFAULT 's3cret')`,
	`CREATE TABLE djpeer_meta (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ,
		name VARCHAR(200) NOT NULL DEFAULT '')`,
	`CREATE TABLE djpeer_filtered (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ,
		name VARCHAR(200) NOT NULL DEFAULT '', is_active BOOLEAN NOT NULL DEFAULT true)`,
}

// TestTriggerCaptureMatchesDjangoVectors replays the django-cqrs vectors'
// saves and deletes on PostgreSQL with plain SQL captured by triggers
// (package capture/trigger), and checks that the relay's rendering of each
// publishes django-cqrs's bytes. The capture time is the database's here,
// so cqrs_updated (and expires, which follows it) are taken from the
// vector; every other byte is compared.
func TestTriggerCaptureMatchesDjangoVectors(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenPostgres(t, pgVectorTables...)
	drv := databasesql.New(db, sqldialect.Postgres())
	ctx := t.Context()
	for _, m := range vectorModels {
		if err := trigger.Install(ctx, drv, m); err != nil {
			t.Fatal(err)
		}
	}
	// asLibrary runs statements that the triggers leave alone (setting up
	// the row as it stood before the vector's change, cleaning up).
	asLibrary := func(fn func(tx *sql.Tx)) {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		if _, err := tx.ExecContext(ctx, `SELECT set_config('`+sqldialect.CaptureMarker+`', 'library', true)`); err != nil {
			t.Fatal(err)
		}
		fn(tx)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(tx *sql.Tx, q string, args ...any) {
		t.Helper()
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	checked := 0
	for _, vc := range masterVectorCases(t) {
		for i, msg := range vc.Messages {
			want, err := cqrsync.DecodePayload([]byte(msg.Body), time.Now())
			if err != nil || want.SignalType == cqrsync.SignalSync || !registered(want.CQRSID) {
				continue
			}
			rev, err := want.Revision()
			if err != nil {
				t.Fatal(err)
			}
			asLibrary(func(tx *sql.Tx) {
				exec(tx, "DELETE FROM "+want.CQRSID)
				exec(tx, "DELETE FROM cqrs_tombstones")
				exec(tx, "DELETE FROM cqrs_outbox")
			})
			pk := want.InstanceData[0].Value
			row := cqrsync.Object{}
			if want.SignalType == cqrsync.SignalDelete {
				row = cqrsync.Object{{Key: "id", Value: pk}, {Key: cqrsync.RevisionField, Value: rev - 1}}
				if want.CQRSID == "djpeer_filtered" {
					row.Set("is_active", true)
				}
			} else {
				row = append(row, want.InstanceData...)
				row.Delete(cqrsync.UpdatedField)
				row.Delete(cqrsync.RevisionField)
			}
			// The change itself, in plain SQL: an INSERT for a create, an
			// UPDATE or DELETE of the row as it stood before.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case want.SignalType == cqrsync.SignalDelete:
				asLibrary(func(tx *sql.Tx) { insertRowAs(t, tx, sqldialect.Postgres().Placeholder, want.CQRSID, row) })
				exec(tx, "DELETE FROM "+want.CQRSID+" WHERE id = $1", pk)
			case rev == 0:
				insertRowAs(t, tx, sqldialect.Postgres().Placeholder, want.CQRSID, row)
			default:
				row.Set(cqrsync.RevisionField, rev-1)
				asLibrary(func(tx *sql.Tx) { insertRowAs(t, tx, sqldialect.Postgres().Placeholder, want.CQRSID, row) })
				exec(tx, "UPDATE "+want.CQRSID+" SET id = id WHERE id = $1", pk)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			checked++
			master := vectorMaster(t, drv, vectorMasterConfig(vc.MasterEnv, time.Now()))
			events, err := sqldialect.Postgres().ClaimOutbox(ctx, drv.Pool(), &sqldialect.ClaimOutboxParams{Limit: 10, Now: time.Now(), LeaseUntil: time.Now().Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 1 {
				t.Fatalf("%s/%d: outbox has %d rows, want 1", vc.Case, i, len(events))
			}
			publish, err := master.RenderOutbox(ctx, &events[0])
			if err != nil {
				t.Fatalf("%s/%d: render: %v", vc.Case, i, err)
			}
			if !publish {
				t.Fatalf("%s/%d: nothing to publish", vc.Case, i)
			}
			got, err := cqrsync.DecodePayload(events[0].Body, time.Now())
			if err != nil {
				t.Fatalf("%s/%d: our own body does not decode: %v", vc.Case, i, err)
			}
			wantUpdated, _ := want.InstanceData.Get(cqrsync.UpdatedField)
			got.InstanceData.Set(cqrsync.UpdatedField, wantUpdated)
			if want.Expires.IsZero() != got.Expires.IsZero() {
				t.Errorf("%s/%d: expires = %v, want %v", vc.Case, i, got.Expires, want.Expires)
			}
			got.Expires = want.Expires
			out, err := got.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != msg.Body {
				t.Errorf("%s/%d: body differs from django-cqrs's\n got: %s\nwant: %s", vc.Case, i, out, msg.Body)
			}
		}
	}
	t.Logf("%d vector messages replayed through triggers", checked)
	if checked < 15 {
		t.Fatalf("only %d vector messages replayed through triggers; the vectors directory looks incomplete", checked)
	}
}

func registered(cqrsID string) bool {
	for _, m := range vectorModels {
		if m.CQRSID == cqrsID {
			return true
		}
	}
	return false
}

package cqrsync_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// replicaDB is a database the apply rules run on.
type replicaDB struct {
	dialect sqldialect.Dialect
	// open returns an isolated, migrated, empty database.
	open func(t *testing.T) *sql.DB
	// timestamp and uuid are the column types for cqrs_updated and a UUID key.
	timestamp, uuid string
}

func sqliteReplicaDB() replicaDB {
	return replicaDB{
		dialect:   sqldialect.SQLite(),
		open:      func(t *testing.T) *sql.DB { return cqrsynctesting.OpenSQLite(t) },
		timestamp: "DATETIME", uuid: "UUID",
	}
}

func TestReplicaRulesSQLite(t *testing.T) {
	t.Parallel()
	runReplicaRules(t, sqliteReplicaDB())
}

type rulesBundle struct {
	db      *sql.DB
	d       sqldialect.Dialect
	replica *cqrsync.Replica
	logs    *syncBuffer
	t0      time.Time
	// batched applies each event with ApplyBatch (a batch of one) instead
	// of Apply.
	batched bool
}

// bothPaths names the rule tests that also run through ApplyBatch.
var bothPaths = map[string]bool{
	"SyncOlderThanRowIsStale": true, "SyncAtStoredRevisionRepairsContent": true, "SyncNewerApplies": true,
	"SyncAtTombstoneIsDropped": true, "SyncDowngradesAheadRowOnlyWhenDirect": true, "SyncOlderThanTombstoneIsDropped": true, "DjangoReCreatedKeyIsApplied": true,
}

func setupRules(t *testing.T, rdb replicaDB, models ...*cqrsync.ReplicaModel) *rulesBundle {
	t.Helper()
	b := &rulesBundle{db: rdb.open(t), d: rdb.dialect, logs: &syncBuffer{}, t0: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}
	q := rdb.dialect.QuoteIdent
	for _, ddl := range []string{
		fmt.Sprintf(`CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY, %s VARCHAR(100) NOT NULL, %s VARCHAR(100) NULL, %s INTEGER NOT NULL, %s %s NOT NULL)`,
			q("item"), q("id"), q("title"), q("note"), q("cqrs_revision"), q("cqrs_updated"), rdb.timestamp),
		fmt.Sprintf(`CREATE TABLE %s (%s VARCHAR(50) NOT NULL PRIMARY KEY, %s INTEGER NOT NULL, %s %s NOT NULL)`,
			q("skey"), q("code"), q("cqrs_revision"), q("cqrs_updated"), rdb.timestamp),
		fmt.Sprintf(`CREATE TABLE %s (%s %s NOT NULL PRIMARY KEY, %s INTEGER NOT NULL, %s %s NOT NULL)`,
			q("ukey"), q("id"), rdb.uuid, q("cqrs_revision"), q("cqrs_updated"), rdb.timestamp),
	} {
		if _, err := b.db.ExecContext(t.Context(), ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	var err error
	b.replica, err = cqrsync.NewReplica(databasesql.New(b.db, rdb.dialect), &cqrsync.ReplicaConfig{
		Logger:             slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		TombstoneRetention: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(models) == 0 {
		models = []*cqrsync.ReplicaModel{
			{CQRSID: "item", Table: "item", Mapping: map[string]string{"id": "id", "name": "title", "note": "note"}},
			{CQRSID: "skey", Table: "skey", PK: "code"},
			{CQRSID: "ukey", Table: "ukey", Types: map[string]cqrsync.ValueType{"id": cqrsync.TypeUUID}},
		}
	}
	for _, m := range models {
		if err := b.replica.Register(m); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// event builds a payload for model item.
func (b *rulesBundle) event(signal cqrsync.SignalType, id int64, rev int64, at time.Duration, name string) *cqrsync.Payload {
	p := &cqrsync.Payload{SignalType: signal, CQRSID: "item", InstancePK: id, Meta: cqrsync.Object{}}
	updated := cqrsync.FormatDateTime(b.t0.Add(at * time.Second)) // at counts seconds
	if signal == cqrsync.SignalDelete {
		p.InstanceData = cqrsync.Object{{Key: "id", Value: id}, {Key: "cqrs_revision", Value: rev}, {Key: "cqrs_updated", Value: updated}}
		return p
	}
	p.InstanceData = cqrsync.Object{{Key: "id", Value: id}, {Key: "name", Value: name}, {Key: "secret", Value: "not replicated"},
		{Key: "cqrs_revision", Value: rev}, {Key: "cqrs_updated", Value: updated}}
	return p
}

func (b *rulesBundle) apply(t *testing.T, p *cqrsync.Payload) (cqrsync.Outcome, error) {
	t.Helper()
	tx, err := b.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out cqrsync.Outcome
	if b.batched {
		var outs []cqrsync.Outcome
		outs, err = b.replica.ApplyBatch(t.Context(), sqldialect.FromSQL(tx), []*cqrsync.Payload{p})
		out = outs[0]
	} else {
		out, err = b.replica.Apply(t.Context(), sqldialect.FromSQL(tx), p)
	}
	if err != nil {
		_ = tx.Rollback()
		return out, err
	}
	return out, tx.Commit()
}

// djangoEvent is the body of the first message of a django-cqrs capture,
// as a payload for model item, key 1: django-cqrs's own payload, with its
// revision and cqrs_updated.
func djangoEvent(t *testing.T, vector, name string) *cqrsync.Payload {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cqrsynctesting.VectorsDir(t), vector))
	if err != nil {
		t.Fatal(err)
	}
	var capture struct {
		Messages []struct {
			Body string `json:"body"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(data, &capture); err != nil || len(capture.Messages) == 0 {
		t.Fatalf("%s: %v (%d messages)", vector, err, len(capture.Messages))
	}
	p, err := cqrsync.DecodePayload([]byte(capture.Messages[0].Body), time.Time{})
	if err != nil {
		t.Fatalf("%s: %v", vector, err)
	}
	p.CQRSID, p.InstancePK, p.Expires = "item", int64(1), time.Time{}
	p.InstanceData.Set("id", int64(1))
	if p.SignalType != cqrsync.SignalDelete {
		p.InstanceData.Set("name", name)
	}
	return p
}

// runDjangoReCreate replays what a django-cqrs master sends when it
// creates a row (revision 0), updates it (1), deletes it (2, at T1) and
// creates the key again: django-cqrs restarts it at revision 0, at T2 >
// T1. The replica must hold the re-created row; a late SAVE or SYNC from
// before the delete (revision 1, before T1) stays dropped.
func runDjangoReCreate(t *testing.T, b *rulesBundle) {
	create := djangoEvent(t, "basic_create_full.json", "created")
	update := djangoEvent(t, "basic_update.json", "updated")
	del := djangoEvent(t, "basic_delete.json", "")
	t1, err := del.Updated()
	if err != nil {
		t.Fatal(err)
	}
	recreate := djangoEvent(t, "basic_create_full.json", "recreated")
	recreate.InstanceData.Set("cqrs_updated", cqrsync.FormatDateTime(t1.Add(5*time.Second))) // T2 = T1 + 5 s
	for _, want := range []struct {
		p    *cqrsync.Payload
		want int64
	}{{create, 0}, {update, 1}, {del, 2}} {
		if rev, err := want.p.Revision(); err != nil || rev != want.want {
			t.Fatalf("%s from the capture has revision %d, %v; want %d", want.p.SignalType, rev, err, want.want)
		}
	}
	b.mustApply(t, create, cqrsync.OutcomeCreated)
	b.mustApply(t, update, cqrsync.OutcomeUpdated)
	b.mustApply(t, del, cqrsync.OutcomeDeleted)
	b.mustApply(t, recreate, cqrsync.OutcomeCreated)
	b.wantRow(t, 1, "recreated", 0)
	b.mustApply(t, del, cqrsync.OutcomeNoop) // redelivered: must not delete the new row
	b.wantRow(t, 1, "recreated", 0)
	b.mustApply(t, update, cqrsync.OutcomeTombstoned) // redelivered late
	staleSync := djangoEvent(t, "basic_update.json", "stale sync")
	staleSync.SignalType = cqrsync.SignalSync
	b.mustApply(t, staleSync, cqrsync.OutcomeTombstoned)
	b.wantRow(t, 1, "recreated", 0)
}

func (b *rulesBundle) mustApply(t *testing.T, p *cqrsync.Payload, want cqrsync.Outcome) {
	t.Helper()
	out, err := b.apply(t, p)
	if err != nil || out != want {
		t.Fatalf("apply %s rev %v = %v, %v; want %v", p.SignalType, p.InstanceData, out, err, want)
	}
}

func (b *rulesBundle) row(t *testing.T, id int64) (title string, rev int64, ok bool) {
	t.Helper()
	q := b.d.QuoteIdent
	err := b.db.QueryRowContext(t.Context(), fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s = %s", q("title"), q("cqrs_revision"), q("item"), q("id"), b.d.Placeholder(1)), id).Scan(&title, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return title, rev, true
}

func (b *rulesBundle) wantRow(t *testing.T, id int64, title string, rev int64) {
	t.Helper()
	got, gotRev, ok := b.row(t, id)
	if !ok || got != title || gotRev != rev {
		t.Fatalf("row %d = %q rev %d (exists %v); want %q rev %d", id, got, gotRev, ok, title, rev)
	}
}

func (b *rulesBundle) wantNoRow(t *testing.T, id int64) {
	t.Helper()
	if got, rev, ok := b.row(t, id); ok {
		t.Fatalf("row %d = %q rev %d; want none", id, got, rev)
	}
}

// runBatchOfSyncKinds applies, in one ApplyBatch, a SAVE, a broadcast
// SYNC and a SYNC sent to this queue alone, each older than its key's
// stored row: one statement has one revision guard, so the batch must
// write them apart, and only the direct SYNC downgrades its row.
func runBatchOfSyncKinds(t *testing.T, b *rulesBundle) {
	for id := int64(1); id <= 3; id++ {
		b.mustApply(t, b.event(cqrsync.SignalSave, id, 7, 7, "ahead"), cqrsync.OutcomeCreated)
	}
	direct := b.event(cqrsync.SignalSync, 3, 2, 2, "repaired")
	direct.Queue = "mine"
	batch := []*cqrsync.Payload{
		b.event(cqrsync.SignalSave, 1, 2, 2, "old save"),
		b.event(cqrsync.SignalSync, 2, 2, 2, "old broadcast"),
		direct,
	}
	tx, err := b.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := b.replica.ApplyBatch(t.Context(), sqldialect.FromSQL(tx), batch)
	if err != nil {
		_ = tx.Rollback()
		t.Fatalf("ApplyBatch: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []cqrsync.Outcome{cqrsync.OutcomeStale, cqrsync.OutcomeStale, cqrsync.OutcomeSynced}
	if !slices.Equal(outs, want) {
		t.Fatalf("ApplyBatch outcomes = %v, want %v", outs, want)
	}
	b.wantRow(t, 1, "ahead", 7)
	b.wantRow(t, 2, "ahead", 7)
	b.wantRow(t, 3, "repaired", 2)
}

// runReplicaRules is the named test of every apply rule, on one database.
func runReplicaRules(t *testing.T, rdb replicaDB) {
	const (
		save   = cqrsync.SignalSave
		sync   = cqrsync.SignalSync
		delete = cqrsync.SignalDelete
	)
	tests := []struct {
		name string
		run  func(t *testing.T, b *rulesBundle)
	}{
		{"SaveCreatesMissingRow", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 4, 0, "a"), cqrsync.OutcomeCreated) // whatever the revision
			b.wantRow(t, 1, "a", 4)
		}},
		{"SaveNewerUpdates", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 0, 0, "a"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(save, 1, 1, 1, "b"), cqrsync.OutcomeUpdated)
			b.wantRow(t, 1, "b", 1)
		}},
		{"SaveEqualRevisionIsDuplicate", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 1, 0, "a"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(save, 1, 1, 0, "changed"), cqrsync.OutcomeDuplicate)
			b.wantRow(t, 1, "a", 1)
		}},
		{"SaveOlderRevisionIsStale", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 3, 3, "new"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(save, 1, 2, 2, "old"), cqrsync.OutcomeStale)
			b.wantRow(t, 1, "new", 3)
		}},
		{"SaveRevisionGapIsAppliedAndLogged", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 0, 0, "a"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(save, 1, 4, 4, "b"), cqrsync.OutcomeUpdated)
			b.wantRow(t, 1, "b", 4)
			if !strings.Contains(b.logs.String(), "lost packages") || !strings.Contains(b.logs.String(), "lost=3") {
				t.Fatalf("no lost-packages warning with lost=3 in:\n%s", b.logs.String())
			}
		}},
		{"SyncOlderThanRowIsStale", func(t *testing.T, b *rulesBundle) {
			// A SYNC read before a change and delivered after it.
			b.mustApply(t, b.event(save, 1, 5, 5, "new"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(sync, 1, 2, 2, "synced"), cqrsync.OutcomeStale)
			b.wantRow(t, 1, "new", 5)
			if !strings.Contains(b.logs.String(), "stale event dropped") {
				t.Fatalf("no stale-event log in:\n%s", b.logs.String())
			}
		}},
		{"SyncDowngradesAheadRowOnlyWhenDirect", func(t *testing.T, b *rulesBundle) {
			// Rows 1 and 2 drifted ahead of the master (revision 7 where it
			// has 2). A broadcast SYNC leaves row 1 alone; a SYNC aimed at
			// this queue alone (diff-sync, sync --queue: an operator's
			// repair) puts the master's row 2 back, as django-cqrs does,
			// and logs the downgrade.
			b.mustApply(t, b.event(save, 1, 7, 7, "ahead"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(save, 2, 7, 7, "ahead"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(sync, 1, 2, 2, "master"), cqrsync.OutcomeStale)
			b.wantRow(t, 1, "ahead", 7)
			if strings.Contains(b.logs.String(), "SYNC downgraded") {
				t.Fatalf("a broadcast SYNC logged a downgrade:\n%s", b.logs.String())
			}
			direct := b.event(sync, 2, 2, 2, "master")
			direct.Queue = "mine"
			b.mustApply(t, direct, cqrsync.OutcomeSynced)
			b.wantRow(t, 2, "master", 2)
			if !strings.Contains(b.logs.String(), "SYNC downgraded") {
				t.Fatalf("no downgrade warning in:\n%s", b.logs.String())
			}
			// A copy of a one-queue SYNC (a retry, or a dead letter sent
			// again later) may arrive after newer changes: it no longer
			// downgrades.
			b.mustApply(t, b.event(save, 2, 8, 8, "newer"), cqrsync.OutcomeUpdated)
			retried := b.event(sync, 2, 2, 2, "master")
			retried.Queue, retried.Retries = "mine", 1
			b.mustApply(t, retried, cqrsync.OutcomeStale)
			replayed := b.event(sync, 2, 2, 2, "master")
			replayed.Queue, replayed.Headers = "mine", map[string]string{cqrsync.HeaderReplayed: "1"}
			b.mustApply(t, replayed, cqrsync.OutcomeStale)
			b.wantRow(t, 2, "newer", 8)
		}},
		{"SyncAtStoredRevisionRepairsContent", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 3, 3, "drifted"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(sync, 1, 3, 3, "repaired"), cqrsync.OutcomeSynced)
			b.wantRow(t, 1, "repaired", 3)
			b.mustApply(t, b.event(sync, 1, 3, 3, "repaired"), cqrsync.OutcomeSynced) // unchanged content
			b.wantRow(t, 1, "repaired", 3)
		}},
		{"SyncNewerApplies", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 1, 1, "old"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(sync, 1, 4, 4, "synced"), cqrsync.OutcomeSynced)
			b.wantRow(t, 1, "synced", 4)
			b.mustApply(t, b.event(sync, 2, 0, 0, "created"), cqrsync.OutcomeCreated)
			b.wantRow(t, 2, "created", 0)
		}},
		{"SyncAtTombstoneIsDropped", func(t *testing.T, b *rulesBundle) {
			// Broadcast or aimed at this queue, a SYNC cannot resurrect a
			// deleted row.
			b.mustApply(t, b.event(save, 1, 2, 2, "a"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(delete, 1, 3, 3, ""), cqrsync.OutcomeDeleted)
			b.mustApply(t, b.event(sync, 1, 3, 3, "late"), cqrsync.OutcomeTombstoned)
			direct := b.event(sync, 1, 3, 3, "late")
			direct.Queue = "mine"
			b.mustApply(t, direct, cqrsync.OutcomeTombstoned)
			b.wantNoRow(t, 1)
		}},
		{"DjangoReCreatedKeyIsApplied", func(t *testing.T, b *rulesBundle) {
			runDjangoReCreate(t, b)
		}},
		{"DeleteRemovesRowAndLeavesTombstone", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 0, 0, "a"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(delete, 1, 1, 1, ""), cqrsync.OutcomeDeleted)
			b.wantNoRow(t, 1)
			b.mustApply(t, b.event(delete, 1, 1, 1, ""), cqrsync.OutcomeNoop) // duplicate DELETE
		}},
		{"DeleteByStringAndUUIDKeys", func(t *testing.T, b *rulesBundle) {
			for _, c := range []struct{ id, table, col, key string }{
				{"skey", "skey", "code", "abc-1"},
				{"ukey", "ukey", "id", "ABCDEF01-2345-6789-ABCD-EF0123456789"},
			} {
				data := cqrsync.Object{{Key: c.col, Value: c.key}, {Key: "cqrs_revision", Value: int64(0)}, {Key: "cqrs_updated", Value: cqrsync.FormatDateTime(b.t0)}}
				b.mustApply(t, &cqrsync.Payload{SignalType: save, CQRSID: c.id, InstancePK: c.key, InstanceData: data}, cqrsync.OutcomeCreated)
				del := cqrsync.Object{{Key: "id", Value: strings.ToLower(c.key)}, {Key: "cqrs_revision", Value: int64(1)}, {Key: "cqrs_updated", Value: cqrsync.FormatDateTime(b.t0.Add(time.Second))}}
				if c.id == "skey" {
					del[0].Value = c.key
				}
				b.mustApply(t, &cqrsync.Payload{SignalType: delete, CQRSID: c.id, InstancePK: c.key, InstanceData: del}, cqrsync.OutcomeDeleted)
				b.mustApply(t, &cqrsync.Payload{SignalType: save, CQRSID: c.id, InstancePK: c.key, InstanceData: data}, cqrsync.OutcomeTombstoned)
			}
		}},
		{"SaveOlderThanTombstoneIsDropped", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(delete, 1, 3, 3, ""), cqrsync.OutcomeNoop) // DELETE overtook the SAVEs
			b.mustApply(t, b.event(save, 1, 2, 2, "late"), cqrsync.OutcomeTombstoned)
			b.wantNoRow(t, 1)
		}},
		{"SyncOlderThanTombstoneIsDropped", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(delete, 1, 3, 3, ""), cqrsync.OutcomeNoop)
			b.mustApply(t, b.event(sync, 1, 2, 2, "late"), cqrsync.OutcomeTombstoned)
			b.wantNoRow(t, 1)
		}},
		{"ReCreateAfterDeleteIsApplied", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 0, 0, "a"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(delete, 1, 1, 1, ""), cqrsync.OutcomeDeleted)
			// A cqrsync master continues the revision...
			b.mustApply(t, b.event(save, 1, 2, 2, "again"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(delete, 1, 3, 3, ""), cqrsync.OutcomeDeleted)
			// ...a django-cqrs master restarts at 0, with a later time.
			b.mustApply(t, b.event(save, 1, 0, 4, "django"), cqrsync.OutcomeCreated)
			b.wantRow(t, 1, "django", 0)
		}},
		{"StaleDeleteKeepsRecreatedRow", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 5, 5, "recreated"), cqrsync.OutcomeCreated)
			b.mustApply(t, b.event(delete, 1, 4, 4, ""), cqrsync.OutcomeNoop)
			b.wantRow(t, 1, "recreated", 5)
		}},
		{"TombstonesArePurgedAfterRetention", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(delete, 1, 3, 3, ""), cqrsync.OutcomeNoop)
			n, err := b.replica.PurgeTombstones(t.Context(), sqldialect.FromSQL(b.db))
			if err != nil || n != 0 {
				t.Fatalf("purge of a fresh tombstone = %d, %v; want 0", n, err)
			}
			later, _ := cqrsync.NewReplica(b.replica.DB(), &cqrsync.ReplicaConfig{TombstoneRetention: time.Hour, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
			if n, err := later.PurgeTombstones(t.Context(), sqldialect.FromSQL(b.db)); err != nil || n != 1 {
				t.Fatalf("purge after the retention = %d, %v; want 1", n, err)
			}
			b.mustApply(t, b.event(save, 1, 2, 2, "back"), cqrsync.OutcomeCreated)
		}},
		{"MappingRenamesAndIgnoresExtraFields", func(t *testing.T, b *rulesBundle) {
			b.mustApply(t, b.event(save, 1, 0, 0, "mapped"), cqrsync.OutcomeCreated) // "name" → title, "secret" dropped
			b.wantRow(t, 1, "mapped", 0)
		}},
		{"MissingRequiredFieldsAreNamed", func(t *testing.T, b *rulesBundle) {
			p := b.event(save, 1, 0, 0, "x")
			p.InstanceData.Delete("name")
			_, err := b.apply(t, p)
			if !errors.Is(err, cqrsync.ErrMissingFields) || !strings.Contains(err.Error(), "[title]") {
				t.Fatalf("apply without a required field = %v, want ErrMissingFields naming title", err)
			}
		}},
		{"UnknownSignalFails", func(t *testing.T, b *rulesBundle) {
			_, err := b.apply(t, b.event("UPSERT", 1, 0, 0, "x"))
			if !errors.Is(err, cqrsync.ErrUnknownSignal) {
				t.Fatalf("apply UPSERT = %v, want ErrUnknownSignal", err)
			}
		}},
		{"UnknownModelFails", func(t *testing.T, b *rulesBundle) {
			p := b.event(save, 1, 0, 0, "x")
			p.CQRSID = "nope"
			if _, err := b.apply(t, p); !errors.Is(err, cqrsync.ErrUnknownModel) {
				t.Fatalf("apply of an unknown model = %v, want ErrUnknownModel", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, setupRules(t, rdb))
		})
		if bothPaths[tc.name] {
			t.Run(tc.name+"/batched", func(t *testing.T) {
				t.Parallel()
				b := setupRules(t, rdb)
				b.batched = true
				tc.run(t, b)
			})
		}
	}
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("SecondaryUniqueKey/batched=%v", batched), func(t *testing.T) {
			t.Parallel()
			runSecondaryUniqueKey(t, rdb, batched)
		})
		t.Run(fmt.Sprintf("UniqueKeyAddedLater/batched=%v", batched), func(t *testing.T) {
			t.Parallel()
			runUniqueKeyAddedLater(t, rdb, batched)
		})
	}
	t.Run("BatchKeepsEachSyncsGuard", func(t *testing.T) {
		t.Parallel()
		runBatchOfSyncKinds(t, setupRules(t, rdb))
	})
	t.Run("ModelFlags", func(t *testing.T) {
		t.Parallel()
		runReplicaFlags(t, rdb)
	})
	t.Run("BatchEqualsOneByOne", func(t *testing.T) {
		t.Parallel()
		runBatchDifferential(t, rdb)
	})
}

// runBatchDifferential applies random event streams (duplicates, reordered
// events, deletes, re-creates, SYNCs) with ApplyBatch to one database and
// one event at a time with Apply to another: tables and outcomes must be
// the same.
func runBatchDifferential(t *testing.T, rdb replicaDB) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	one, batch := setupRules(t, rdb), setupRules(t, rdb)
	type state struct {
		rev     int64
		deleted bool
	}
	rows := map[int64]*state{}
	var events []*cqrsync.Payload
	for step := range 400 {
		id := int64(1 + r.IntN(25))
		st := rows[id]
		at := time.Duration(step + 1)
		var p *cqrsync.Payload
		switch {
		case st == nil || st.deleted:
			rev := int64(0)
			if st != nil {
				rev = st.rev + 1
			}
			rows[id] = &state{rev: rev}
			p = one.event(cqrsync.SignalSave, id, rev, at, fmt.Sprintf("v%d", step))
		case r.IntN(8) == 0:
			st.rev++
			st.deleted = true
			p = one.event(cqrsync.SignalDelete, id, st.rev, at, "")
		case r.IntN(10) == 0:
			p = one.event(cqrsync.SignalSync, id, st.rev, at, fmt.Sprintf("s%d", step))
		default:
			st.rev++
			p = one.event(cqrsync.SignalSave, id, st.rev, at, fmt.Sprintf("v%d", step))
		}
		events = append(events, p)
		if r.IntN(5) == 0 { // a duplicate
			events = append(events, p)
		}
	}
	// Reorder neighbours now and then, as redelivery does.
	for i := range events {
		if j := i + 1 + r.IntN(3); j < len(events) && r.IntN(4) == 0 {
			events[i], events[j] = events[j], events[i]
		}
	}
	var want []cqrsync.Outcome
	for _, p := range events {
		out, err := one.apply(t, p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, out)
	}
	var got []cqrsync.Outcome
	for chunk := range slices.Chunk(events, 37) {
		tx, err := batch.db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := batch.replica.ApplyBatch(t.Context(), sqldialect.FromSQL(tx), chunk)
		if err != nil {
			t.Fatalf("ApplyBatch: %v (seed %d)", err, seed)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		got = append(got, outs...)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d (%s %v): batch outcome %v, one by one %v (seed %d)", i, events[i].SignalType, events[i].InstanceData, got[i], want[i], seed)
		}
	}
	for id := int64(1); id <= 25; id++ {
		t1, r1, ok1 := one.row(t, id)
		t2, r2, ok2 := batch.row(t, id)
		if t1 != t2 || r1 != r2 || ok1 != ok2 {
			t.Errorf("row %d: one by one %q rev %d (exists %v), batch %q rev %d (exists %v) (seed %d)", id, t1, r1, ok1, t2, r2, ok2, seed)
		}
	}
}

// runReplicaFlags tests the per-model flags and handlers.
func runReplicaFlags(t *testing.T, rdb replicaDB) {
	var calls []string
	handler := func(kind string) func(context.Context, sqldialect.Executor, *cqrsync.ReplicaEvent) error {
		return func(_ context.Context, _ sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
			name, _ := e.Data.Get("name")
			calls = append(calls, fmt.Sprintf("%s %s %v rev %d meta %v", kind, e.Signal, name, e.Revision, e.Meta != nil))
			return nil
		}
	}
	b := setupRules(t, rdb,
		&cqrsync.ReplicaModel{CQRSID: "item", Table: "item", Mapping: map[string]string{"id": "id", "name": "title"},
			OnSave: handler("save"), OnDelete: handler("delete"), OnlyDirectSyncs: true, SelectForUpdate: true, QueryTimeout: 10 * time.Second},
		&cqrsync.ReplicaModel{CQRSID: "nodb", NoDBOperations: true, Meta: true, OnSave: handler("nodb-save"), OnDelete: handler("nodb-delete")},
	)
	ev := b.event
	b.mustApply(t, ev(cqrsync.SignalSave, 1, 0, 0, "a"), cqrsync.OutcomeCreated)
	b.mustApply(t, ev(cqrsync.SignalSave, 1, 0, 0, "a"), cqrsync.OutcomeDuplicate) // handler not called
	b.mustApply(t, ev(cqrsync.SignalSync, 1, 1, 1, "broadcast"), cqrsync.OutcomeIgnored)
	direct := ev(cqrsync.SignalSync, 1, 1, 1, "direct")
	direct.Queue = "mine"
	b.mustApply(t, direct, cqrsync.OutcomeSynced)
	b.mustApply(t, ev(cqrsync.SignalDelete, 1, 2, 2, ""), cqrsync.OutcomeDeleted)
	nodb := ev(cqrsync.SignalSave, 9, 0, 0, "free")
	nodb.CQRSID = "nodb"
	b.mustApply(t, nodb, cqrsync.OutcomeHandled)
	want := "save SAVE a rev 0 meta false|save SYNC direct rev 1 meta false|delete DELETE <nil> rev 2 meta false|nodb-save SAVE free rev 0 meta true"
	if got := strings.Join(calls, "|"); got != want {
		t.Fatalf("handler calls:\n got %s\nwant %s", got, want)
	}
	if err := (&cqrsync.Replica{}).Register(&cqrsync.ReplicaModel{CQRSID: "x", NoDBOperations: true}); err == nil || !strings.Contains(err.Error(), "needs both OnSave and OnDelete") {
		t.Fatalf("Register of a no-DB model without handlers = %v", err)
	}
}

func TestReplicaRulesPostgres(t *testing.T) {
	t.Parallel()
	runReplicaRules(t, replicaDB{
		dialect:   sqldialect.Postgres(),
		open:      func(t *testing.T) *sql.DB { return cqrsynctesting.OpenPostgres(t) },
		timestamp: "TIMESTAMPTZ", uuid: "UUID",
	})
}

func TestReplicaRulesMySQL(t *testing.T) {
	t.Parallel()
	runReplicaRules(t, replicaDB{
		dialect:   sqldialect.MySQL(),
		open:      func(t *testing.T) *sql.DB { return cqrsynctesting.OpenMySQL(t) },
		timestamp: "DATETIME(6)", uuid: "CHAR(36)",
	})
}

// TestReplicaHandlerPreviousData: as django-cqrs's replica does, handlers
// get an empty previous_data as nil, and its keys renamed through the
// model's Mapping (unmapped keys dropped); without a Mapping, as sent.
func TestReplicaHandlerPreviousData(t *testing.T) {
	t.Parallel()
	var got []string
	handler := func(_ context.Context, _ sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
		if e.Previous == nil {
			got = append(got, "nil")
			return nil
		}
		b, err := e.Previous.MarshalJSON()
		got = append(got, string(b))
		return err
	}
	b := setupRules(t, sqliteReplicaDB(),
		&cqrsync.ReplicaModel{CQRSID: "item", Table: "item", Mapping: map[string]string{"id": "id", "name": "title", "note": "note"}, OnSave: handler},
		&cqrsync.ReplicaModel{CQRSID: "skey", Table: "skey", PK: "code", OnSave: handler},
	)
	rev := int64(0)
	for _, prev := range []cqrsync.Object{
		{},  // only untracked fields changed
		nil, // no tracked fields
		{{Key: "name", Value: "old"}, {Key: "secret", Value: "x"}, {Key: "note", Value: nil}},
	} {
		p := b.event(cqrsync.SignalSave, 1, rev, time.Duration(rev), "n")
		p.PreviousData = prev
		b.mustApply(t, p, []cqrsync.Outcome{cqrsync.OutcomeCreated, cqrsync.OutcomeUpdated}[min(rev, 1)])
		rev++
	}
	unmapped := &cqrsync.Payload{SignalType: cqrsync.SignalSave, CQRSID: "skey", InstancePK: "k",
		InstanceData: cqrsync.Object{{Key: "code", Value: "k"}, {Key: "cqrs_revision", Value: int64(0)}, {Key: "cqrs_updated", Value: cqrsync.FormatDateTime(b.t0)}},
		PreviousData: cqrsync.Object{{Key: "owner", Value: int64(3)}}}
	b.mustApply(t, unmapped, cqrsync.OutcomeCreated)
	want := `nil|nil|{"title":"old","note":null}|{"owner":3}`
	if s := strings.Join(got, "|"); s != want {
		t.Fatalf("handlers saw previous_data\n got %s\nwant %s", s, want)
	}
}

package pgwal_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/outbox/pgwal"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
)

// TestWALMatchesTableOutbox runs the same changes through a master with
// the table outbox and its relay, and through a master with the WAL
// outbox and its relay, on the same clocks: the broker must get the same
// messages, byte for byte — tracked fields, meta, correlation IDs,
// headers, and expires stamped at publish.
func TestWALMatchesTableOutbox(t *testing.T) {
	t.Parallel()
	captured := time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)
	published := captured.Add(90 * time.Second)
	cfg := cqrsync.MasterConfig{
		Now: func() time.Time { return captured },
		Meta: func(_ context.Context, signal cqrsync.SignalType, row cqrsync.Object) (cqrsync.Object, error) {
			name, _ := row.Get("name")
			return cqrsync.Object{{Key: "signal", Value: string(signal)}, {Key: "name", Value: name}}, nil
		},
		CorrelationID: func(_ context.Context, _ cqrsync.SignalType, _ string, pk any, _ string) string {
			return fmt.Sprintf("corr-%v", pk)
		},
		MessageTTL: 3600 * time.Second,
	}
	changes := func(ctx context.Context, db *sql.DB, m *cqrsync.Master[*sql.Tx]) error {
		steps := []func(tx *sql.Tx) error{
			func(tx *sql.Tx) error { // Insert: the event is predicted
				return m.Insert(ctx, tx, "item", map[string]any{"id": int64(1), "name": "Ada", "plan": "free"})
			},
			func(tx *sql.Tx) error { // the caller's INSERT, then Create
				if _, err := tx.ExecContext(ctx, "INSERT INTO item (id, name, plan) VALUES (2, 'Bob', NULL)"); err != nil {
					return err
				}
				return m.Create(ctx, tx, "item", int64(2))
			},
			func(tx *sql.Tx) error { // a tracked field changes
				snap, err := m.Snapshot(ctx, tx, "item", int64(1))
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, "UPDATE item SET plan = 'pro' WHERE id = 1"); err != nil {
					return err
				}
				return m.UpdateWith(ctx, tx, "item", &cqrsync.UpdateOpts{Previous: snap}, int64(1))
			},
			func(tx *sql.Tx) error {
				return m.UpdateRow(ctx, tx, "item", int64(2), map[string]any{"name": "Bob \u00e9\u4e16 \"quoted\""})
			},
			func(tx *sql.Tx) error { return m.Sync(ctx, tx, "item", "q", int64(1), int64(2)) },
			func(tx *sql.Tx) error { return m.Delete(ctx, tx, "item", int64(2)) },
			func(tx *sql.Tx) error { // a deleted key again: Insert's predicted event is replaced
				return m.Insert(ctx, tx, "item", map[string]any{"id": int64(2), "name": "Bob again", "plan": "free"})
			},
		}
		for _, step := range steps {
			if err := cqrsync.RunTx(ctx, db, m, step); err != nil {
				return err
			}
		}
		return nil
	}
	const events = 8

	run := func(mode cqrsync.OutboxMode) []transport.Message {
		url := cqrsynctesting.PostgresDatabase(t)
		db, master, err := openMaster(t.Context(), url, mode, true, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		_, sub, pub := memoryQueue(t)
		now := func() time.Time { return published }
		if mode == cqrsync.OutboxWAL {
			started(t, walRelay(t, url, cqrsynctesting.UniqueName("slot_"), pub, func(c *pgwal.Config) { c.Now = now }))
		} else {
			relay, err := outbox.NewRelay(databasesql.New(db, sqldialect.Postgres()), &outbox.Config{Publisher: pub, Now: now, PollInterval: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := relay.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = relay.Stop() })
		}
		if err := changes(t.Context(), db, master); err != nil {
			t.Fatal(err)
		}
		var got []transport.Message
		timeout := time.After(30 * time.Second)
		for len(got) < events {
			select {
			case d := <-sub.Deliveries():
				got = append(got, d.Message)
				_ = sub.Ack(t.Context(), d.ID)
			case <-timeout:
				t.Fatalf("%s: received %d of %d events", mode, len(got), events)
			}
		}
		return got
	}
	table, wal := run(cqrsync.OutboxTable), run(cqrsync.OutboxWAL)
	for i := range events {
		if string(table[i].Body) != string(wal[i].Body) {
			t.Errorf("event %d differs:\ntable: %s\nwal:   %s", i, table[i].Body, wal[i].Body)
		}
		if !maps.Equal(table[i].Headers, wal[i].Headers) || table[i].CQRSID != wal[i].CQRSID || table[i].Queue != wal[i].Queue {
			t.Errorf("event %d: table sent %q %q %v, wal %q %q %v", i, table[i].CQRSID, table[i].Queue, table[i].Headers, wal[i].CQRSID, wal[i].Queue, wal[i].Headers)
		}
	}
	if t.Failed() {
		return
	}
	// The comparison must not pass on empty or unstamped events.
	p, err := cqrsync.DecodePayload(wal[2].Body, published)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Expires.Equal(published.Add(time.Hour).Truncate(time.Second)) || len(p.PreviousData) != 1 || len(p.Meta) != 2 {
		t.Errorf("event 2: expires %v, previous_data %v, meta %v: want expires at publish + 1h, the old plan and the meta", p.Expires, p.PreviousData, p.Meta)
	}
	if p, err := cqrsync.DecodePayload(wal[7].Body, published); err != nil || fmt.Sprint(p.InstancePK) != "2" {
		t.Fatalf("event 7: %v, %v", p, err)
	} else if rev, _ := p.Revision(); rev != 3 {
		t.Errorf("event 7: revision %d, want 3 (after the tombstone's 2): was Insert's mispredicted event published?", rev)
	}
}

// TestWALRollbackPublishesNothing: a rolled-back capture never reaches
// the broker; the next committed one does.
func TestWALRollbackPublishesNothing(t *testing.T) {
	t.Parallel()
	url := cqrsynctesting.PostgresDatabase(t)
	db, master, err := openMaster(t.Context(), url, cqrsync.OutboxWAL, true, cqrsync.MasterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	broker, sub, pub := memoryQueue(t)
	started(t, walRelay(t, url, cqrsynctesting.UniqueName("slot_"), pub, nil))

	boom := errors.New("rolled back on purpose")
	err = cqrsync.RunTx(t.Context(), db, master, func(tx *sql.Tx) error {
		if err := master.Insert(t.Context(), tx, "item", map[string]any{"id": int64(1), "name": "never", "plan": nil}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("RunTx: %v", err)
	}
	if err := write(t.Context(), db, master, 2, true); err != nil {
		t.Fatal(err)
	}
	// Both were written to the log in this order: had the first been
	// published, it would come first.
	got := receive(t, sub, atLeast(1))
	if got[0] != "2@0" {
		t.Fatalf("first event %s, want 2@0 (the committed one)", got[0])
	}
	if n := broker.QueueLen("q"); n != 0 {
		t.Fatalf("%d more events in the queue, want none", n)
	}
}

// TestWALSlot: the relay creates its slot, reuses it after a restart, and
// a second relay on the same slot waits (saying so) until the first stops;
// ReadStatus reports the backlog of a stopped relay, and DropSlot drops it.
func TestWALSlot(t *testing.T) {
	t.Parallel()
	url := cqrsynctesting.PostgresDatabase(t)
	db, master, err := openMaster(t.Context(), url, cqrsync.OutboxWAL, true, cqrsync.MasterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ex := sqldialect.FromSQL(db)
	if err := master.Check(t.Context(), ex); err != nil {
		t.Fatalf("Check on a wal_level = logical server: %v", err)
	}
	_, sub, pub := memoryQueue(t)
	slot := cqrsynctesting.UniqueName("slot_")

	st, err := pgwal.ReadStatus(t.Context(), ex, &pgwal.StatusParams{Slot: slot})
	if err != nil || st.Exists {
		t.Fatalf("before any relay: %+v, %v; want no slot", st, err)
	}
	first := walRelay(t, url, slot, pub, nil)
	started(t, first)
	var logs cqrsynctesting.SyncBuffer
	second := walRelay(t, url, slot, pub, func(c *pgwal.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if !logs.WaitFor("the slot is streamed by another relay", 30*time.Second, nil) {
		t.Fatalf("the second relay did not say it waits for the slot; it logged:\n%s", logs.String())
	}
	select {
	case <-second.Started():
		t.Fatal("a second relay streams a slot the first holds")
	default:
	}
	st, err = pgwal.ReadStatus(t.Context(), ex, &pgwal.StatusParams{Slot: slot})
	if err != nil || !st.Exists || !st.Active || st.ActivePID == 0 {
		t.Fatalf("with a relay streaming: %+v, %v; want an active slot", st, err)
	}
	if err := write(t.Context(), db, master, 1, true); err != nil {
		t.Fatal(err)
	}
	receive(t, sub, atLeast(1))
	cqrsynctesting.Eventually(t, 10*time.Second, "the first event confirmed to the slot", func() bool {
		return first.ConfirmedLSN() != "0/0"
	})

	// The first relay stops: the second takes the slot over, from where
	// the first left it.
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	started(t, second)
	if err := write(t.Context(), db, master, 1, false); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sub, atLeast(1)); got[0] != "1@1" {
		t.Fatalf("after the take-over got %v, want 1@1 and no repeat of 1@0", got)
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}

	// No relay: the event waits in the slot, and the status says so.
	before := time.Now()
	if err := write(t.Context(), db, master, 2, true); err != nil {
		t.Fatal(err)
	}
	cqrsynctesting.Eventually(t, 10*time.Second, "the stopped relay's walsender gone", func() bool {
		st, err = pgwal.ReadStatus(t.Context(), ex, &pgwal.StatusParams{Slot: slot, Publication: slot, PeekOldest: true})
		return err == nil && !st.Active
	})
	if st.LagBytes <= 0 || st.RetainedBytes < st.LagBytes || st.Oldest.Before(before.Add(-time.Second)) || st.Age <= 0 {
		t.Fatalf("with an event waiting and no relay: %+v; want lag, retained WAL and the event's capture time", st)
	}

	// Reused after a restart: a new relay sends the waiting event.
	third := walRelay(t, url, slot, pub, nil)
	if got := receive(t, sub, atLeast(1)); got[0] != "2@0" {
		t.Fatalf("after restart got %v, want 2@0", got)
	}
	if err := third.Stop(); err != nil {
		t.Fatal(err)
	}
	cqrsynctesting.Eventually(t, 10*time.Second, "the slot dropped", func() bool {
		return pgwal.DropSlot(t.Context(), ex, slot) == nil
	})
	if err := pgwal.DropSlot(t.Context(), ex, slot); !errors.Is(err, pgwal.ErrNoSlot) {
		t.Fatalf("dropping it again: %v, want ErrNoSlot", err)
	}
}

// TestWALOnlyOnPostgres: the WAL outbox is refused elsewhere, with what
// to use instead.
func TestWALOnlyOnPostgres(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t)
	_, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), &cqrsync.MasterConfig{Outbox: cqrsync.OutboxWAL})
	if err == nil {
		t.Fatal("NewMaster accepted outbox wal on SQLite")
	}
	if _, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), &cqrsync.MasterConfig{Outbox: "disk"}); err == nil {
		t.Fatal(`NewMaster accepted outbox "disk"`)
	}
}

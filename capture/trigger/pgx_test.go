package trigger_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/capture/trigger"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect/pgxv5"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// TestOnPgxDriver installs triggers and captures through the pgx driver
// (pipelined transactions): plain writes are captured, and library
// captures in pgx transactions make one event per change.
func TestOnPgxDriver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := cqrsynctesting.OpenPgxPool(t, `CREATE TABLE account (id BIGINT PRIMARY KEY, name TEXT NOT NULL, balance NUMERIC(12,2),
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`)
	drv := pgxv5.New(pool)
	master, err := cqrsync.NewMaster(drv, nil)
	if err != nil {
		t.Fatal(err)
	}
	model := &cqrsync.MasterModel{CQRSID: "account", Table: "account", TrackedFields: []string{"name"}}
	if err := master.Register(model); err != nil {
		t.Fatal(err)
	}
	if err := trigger.Install(ctx, drv, model); err != nil {
		t.Fatal(err)
	}
	inTx := func(fn func(tx pgx.Tx) error) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if err := fn(tx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO account (id, name, balance) VALUES (1, 'Ada', 1.50)`); err != nil {
		t.Fatal(err)
	}
	inTx(func(tx pgx.Tx) error {
		return master.UpdateRow(ctx, tx, "account", 1, map[string]any{"name": "Ada L"})
	})
	inTx(func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE account SET balance = 2 WHERE id = 1`); err != nil {
			return err
		}
		return master.Update(ctx, tx, "account", 1)
	})
	inTx(func(tx pgx.Tx) error { return master.Delete(ctx, tx, "account", 1) })

	broker := memory.NewBroker(nil)
	pub := broker.Publisher()
	defer pub.Close()
	sub, err := broker.Subscriber().Subscribe(ctx, &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"account"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	relay, err := outbox.NewRelay(drv, &outbox.Config{Publisher: pub, Renderer: master})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		signal cqrsync.SignalType
		rev    int64
	}{{cqrsync.SignalSave, 0}, {cqrsync.SignalSave, 1}, {cqrsync.SignalSave, 3}, {cqrsync.SignalDelete, 4}}
	if got := relay.Published(); got != int64(len(want)) {
		t.Fatalf("published %d events, want %d", got, len(want))
	}
	for i, w := range want {
		d := <-sub.Deliveries()
		p, err := cqrsync.DecodePayload(d.Body, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		rev, _ := p.Revision()
		if p.SignalType != w.signal || rev != w.rev {
			t.Errorf("event %d: %s at revision %d, want %s at %d: %s", i, p.SignalType, rev, w.signal, w.rev, d.Body)
		}
		if err := sub.Ack(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
}

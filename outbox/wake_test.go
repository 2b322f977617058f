package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// claimCounter counts the relay's claim queries through its hooks, and
// signals each.
type claimCounter struct {
	hook.Nop
	n       atomic.Int64
	claimed chan struct{}
}

func (c *claimCounter) OnClaim(context.Context, hook.Claim) {
	c.n.Add(1)
	select {
	case c.claimed <- struct{}{}:
	default:
	}
}

// wakeCounter counts the master's wakes of the relay.
type wakeCounter struct {
	relay *outbox.Relay
	n     atomic.Int64
}

func (w *wakeCounter) Wake() {
	w.n.Add(1)
	w.relay.Wake()
}

// TestRelayWokenAfterCommit: a master wired to the relay wakes it after the
// commit, never inside the transaction, and each capture costs the relay one
// claim query (no polling: the poll interval is an hour).
func TestRelayWokenAfterCommit(t *testing.T) {
	t.Parallel()
	claims := &claimCounter{claimed: make(chan struct{}, 1)}
	b := setup(t, outbox.Config{PollInterval: time.Hour, Hooks: claims})
	if _, err := b.db.Exec(`CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '',
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMP)`); err != nil {
		t.Fatal(err)
	}
	var quick atomic.Int64 // waits shorter than the poll interval: polling
	outbox.SetWaiting(b.relay, func(d time.Duration) {
		if d < time.Hour {
			quick.Add(1)
		}
	})
	waker := &wakeCounter{relay: b.relay}
	master, err := cqrsync.NewMaster(databasesql.New(b.db, sqldialect.SQLite()), &cqrsync.MasterConfig{Relay: waker})
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "item", Table: "item"}); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	<-claims.claimed // the relay's first look, at start
	ctx := t.Context()

	// A caller's own transaction: the wake comes from Committed.
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Insert(ctx, tx, "item", map[string]any{"id": 1}); err != nil {
		t.Fatal(err)
	}
	if n := waker.n.Load(); n != 0 {
		t.Fatalf("the relay was woken %d time(s) inside the capturing transaction, before its rows were visible", n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	master.Committed()
	b.receive(t, 1)

	// RunTx wakes it itself.
	const captures = 10
	for id := 2; id <= captures; id++ {
		err := cqrsync.RunTx(ctx, b.db, master, func(tx *sql.Tx) error {
			return master.Insert(ctx, tx, "item", map[string]any{"id": id})
		})
		if err != nil {
			t.Fatal(err)
		}
		b.receive(t, 1)
	}
	// A failed function: rolled back, and no wake.
	errFn := errors.New("refused")
	err = cqrsync.RunTx(ctx, b.db, master, func(tx *sql.Tx) error {
		if err := master.Insert(ctx, tx, "item", map[string]any{"id": captures + 1}); err != nil {
			return err
		}
		return errFn
	})
	var kept int
	if err := b.db.QueryRow("SELECT COUNT(*) FROM item WHERE id = ?", captures+1).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, errFn) || waker.n.Load() != captures || kept != 0 {
		t.Fatalf("RunTx of a failing function = %v, %d wakes, %d rows kept; want its error, %d wakes, the row rolled back", err, waker.n.Load(), kept, captures)
	}
	if err := b.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	perCapture := float64(claims.n.Load()-1) / captures
	t.Logf("claim queries per capture: %.2f", perCapture)
	if waker.n.Load() != captures || perCapture != 1 || quick.Load() != 0 {
		t.Fatalf("%d wakes, %.2f claim queries per capture and %d quick polls; want %d wakes, 1 claim each and no polling",
			waker.n.Load(), perCapture, quick.Load(), captures)
	}
}

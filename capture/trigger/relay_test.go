package trigger_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// TestRelayWithoutRenderer checks that a relay that cannot render the
// triggers' rows keeps them, says what to set, and that a relay with a
// Renderer then publishes them.
func TestRelayWithoutRenderer(t *testing.T) {
	t.Parallel()
	b := backends[0]
	mt := newMaster(t, b)
	mt.install(t)
	mt.exec(t, `INSERT INTO account (id, name) VALUES (1, 'Ada')`)
	bare, err := outbox.NewRelay(mt.drv, &outbox.Config{Publisher: mt.broker.Publisher()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.RunOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "set outbox.Config.Renderer") {
		t.Fatalf("RunOnce without a Renderer: %v, want an error naming Config.Renderer", err)
	}
	if st, err := b.dialect.OutboxStats(t.Context(), mt.drv.Pool()); err != nil || st.Rows != 1 {
		t.Fatalf("outbox after the failed render: %+v, %v; want the row kept", st, err)
	}
	if got := mt.published(t); len(got) != 1 || !strings.HasPrefix(got[0], `{"signal_type":"SAVE"`) {
		t.Fatalf("published %q, want one SAVE", got)
	}
}

// TestRenderRefusedRow checks that a row the model's IsSyncInstance
// refuses is deleted unpublished, as library capture publishes nothing for
// it, and that a row image of an unregistered model is kept and reported.
func TestRenderRefusedRow(t *testing.T) {
	t.Parallel()
	b := backends[0]
	mt := newMaster(t, b)
	mt.install(t)
	filtered, err := cqrsync.NewMaster(mt.drv, nil)
	if err != nil {
		t.Fatal(err)
	}
	model := accountModel()
	model.IsSyncInstance = func(row cqrsync.Object) bool { v, _ := row.Get("active"); return v == true }
	if err := filtered.Register(model); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(mt.drv, &outbox.Config{Publisher: mt.broker.Publisher(), Renderer: filtered})
	if err != nil {
		t.Fatal(err)
	}
	mt.exec(t, `INSERT INTO account (id, name, active) VALUES (1, 'Ada', FALSE)`)
	if _, err := relay.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	stats := func() int64 {
		st, err := b.dialect.OutboxStats(t.Context(), mt.drv.Pool())
		if err != nil {
			t.Fatal(err)
		}
		return st.Rows
	}
	if n := stats(); n != 0 || relay.Published() != 0 {
		t.Fatalf("refused row: %d left in the outbox, %d published; want 0 and 0", n, relay.Published())
	}

	unknown, err := outbox.NewRelay(mt.drv, &outbox.Config{Publisher: mt.broker.Publisher(), Renderer: mustMaster(t, mt.drv)})
	if err != nil {
		t.Fatal(err)
	}
	mt.exec(t, `INSERT INTO account (id, name) VALUES (2, 'Bob')`)
	if _, err := unknown.RunOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "register it") {
		t.Fatalf("unregistered model: %v, want an unknown-model error", err)
	}
	if n := stats(); n != 1 {
		t.Fatalf("unregistered model: %d rows in the outbox, want the row kept", n)
	}
}

// mustMaster is a master with no models.
func mustMaster(t *testing.T, drv sqldialect.Driver[*sql.Tx]) *cqrsync.Master[*sql.Tx] {
	t.Helper()
	m, err := cqrsync.NewMaster(drv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRenderFailureHoldsTheKeysLaterEvents checks that a row image the
// relay cannot render holds back the later events of the same key in its
// claim (they would reach replicas before it, out of order: a DELETE
// before the SAVE it follows re-creates the row on a django-cqrs replica),
// while other keys' events go.
func TestRenderFailureHoldsTheKeysLaterEvents(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			mt := newMaster(t, b)
			mt.install(t)
			mt.exec(t, `INSERT INTO account (id, name) VALUES (1, 'Ada')`) // a row image
			mt.libraryTx(t, mt.clock.Now(), func(ctx context.Context, tx *sql.Tx) error {
				if err := mt.m.Delete(ctx, tx, "account", 1); err != nil { // a library event of the same key
					return err
				}
				return mt.m.Insert(ctx, tx, "account", map[string]any{"id": 2, "name": "Bob"}) // another key's
			})
			bare, err := outbox.NewRelay(mt.drv, &outbox.Config{Publisher: mt.broker.Publisher()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bare.RunOnce(t.Context()); err == nil {
				t.Fatal("RunOnce without a Renderer: no error")
			}
			if bare.Published() != 1 {
				t.Fatalf("the relay that cannot render published %d events, want 1 (key 2's only)", bare.Published())
			}
			select {
			case d := <-mt.sub.Deliveries():
				if !strings.Contains(string(d.Body), `"instance_pk":2`) {
					t.Fatalf("the relay that cannot render published %s, want key 2's event", d.Body)
				}
				if err := mt.sub.Ack(t.Context(), d.ID); err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("key 2's event did not arrive")
			}
			got := mt.published(t) // the rendering relay: key 1's SAVE, then its DELETE
			if len(got) != 2 || !strings.Contains(got[0], `"signal_type":"SAVE"`) || !strings.Contains(got[1], `"signal_type":"DELETE"`) {
				t.Fatalf("key 1's events after the render: %q, want its SAVE then its DELETE", got)
			}
		})
	}
}

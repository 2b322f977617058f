package trigger_test

import (
	"database/sql"
	"strings"
	"testing"

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

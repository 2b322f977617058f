package cqrsync_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect/pgxv5"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// runConsumer starts a consumer of cfg, stopped when the test ends, and
// returns it once it has subscribed.
func runConsumer(t testing.TB, cfg *cqrsync.ConsumerConfig) *cqrsync.Consumer {
	t.Helper()
	c, err := cqrsync.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	<-c.Started()
	return c
}

// appliedHooks sends the outcome counts of every committed batch.
type appliedHooks struct {
	hook.Nop
	batches chan hook.Apply
}

func (h *appliedHooks) OnApply(_ context.Context, a hook.Apply) {
	if a.Err == nil {
		h.batches <- a
	}
}

// TestConsumerOnPgxPool runs the consumer end to end on a *pgxpool.Pool
// (the pgx-native driver, pipelined transactions) against the real
// PostgreSQL: saves create rows, deletes remove them and leave tombstones,
// and a late save of a deleted key is dropped.
func TestConsumerOnPgxPool(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, cqrsynctesting.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	drv := pgxv5.New(pool)
	if !drv.Features().Pipeline {
		t.Fatal("the pgx driver does not declare pipelined transactions")
	}
	if err := drv.Dialect().Migrate(ctx, drv.Pool()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE djpeer_basic (id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL,
		cqrs_updated TIMESTAMPTZ NOT NULL, int_field INTEGER NOT NULL, char_field TEXT NOT NULL, bool_field BOOLEAN NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	replica, err := cqrsync.NewReplica(drv, &cqrsync.ReplicaConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic"}); err != nil {
		t.Fatal(err)
	}
	hooks := &appliedHooks{batches: make(chan hook.Apply, 100)}
	broker := memory.NewBroker(nil)
	if err := broker.DeclareQueue("q", "djpeer_basic"); err != nil {
		t.Fatal(err)
	}
	pub := broker.Publisher()
	t.Cleanup(func() { _ = pub.Close() })
	c := runConsumer(t, &cqrsync.ConsumerConfig{Replica: replica, Subscriber: broker.Subscriber(), Publisher: pub,
		Queue: "q", Workers: 2, BatchSize: 10, Hooks: hooks, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	// settle publishes bodies and waits until the consumer committed them
	// all, returning how many changed the replica.
	settle := func(bodies ...string) (applied int) {
		t.Helper()
		msgs := make([]transport.Message, len(bodies))
		for i, b := range bodies {
			msgs[i] = transport.Message{CQRSID: "djpeer_basic", Body: []byte(b)}
		}
		if err := pub.Publish(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
		for seen := 0; seen < len(bodies); {
			select {
			case a := <-hooks.batches:
				seen += a.Size
				applied += a.Applied
			case <-timeout:
				t.Fatalf("the consumer committed %d of %d events in 30 s (stats %+v)", seen, len(bodies), c.Stats())
			}
		}
		return applied
	}
	now := time.Now().UTC().Truncate(time.Second)
	var saves []string
	for id := int64(1); id <= 20; id++ {
		saves = append(saves, saveBody("SAVE", id, 0, id, now))
	}
	if n := settle(saves...); n != 20 {
		t.Fatalf("%d of 20 new rows applied", n)
	}
	var deletes []string
	for id := int64(1); id <= 5; id++ {
		deletes = append(deletes, deleteBody(id, 1, now.Add(time.Second)))
	}
	if n := settle(deletes...); n != 5 {
		t.Fatalf("%d of 5 deletes applied", n)
	}
	if n := settle(saveBody("SAVE", 1, 0, 1, now)); n != 0 {
		t.Fatalf("a late save of a deleted key was applied (%d)", n)
	}
	var rows, sum, tombs int64
	if err := pool.QueryRow(ctx, "SELECT COUNT(*), COALESCE(SUM(int_field), 0) FROM djpeer_basic").Scan(&rows, &sum); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT COUNT(*) FROM cqrs_tombstones").Scan(&tombs); err != nil {
		t.Fatal(err)
	}
	if rows != 15 || sum != 210-15 || tombs != 5 {
		t.Fatalf("replica holds %d rows (int_field sum %d) and %d tombstones; want 15 (sum 195) and 5", rows, sum, tombs)
	}
	if st := c.Stats(); st.DeadLettered != 0 || st.Retried != 0 {
		t.Fatalf("stats %+v: nothing should be retried or dead-lettered", st)
	}
}

package hook_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// counters is a metrics hook: it counts captured rows and applied events.
// It embeds hook.Nop, so it implements only what it needs.
type counters struct {
	hook.Nop
	captured, applied, dropped atomic.Int64
}

func (c *counters) OnCapture(_ context.Context, e hook.Capture) {
	if e.Err == nil {
		c.captured.Add(int64(e.Rows))
	}
}

func (c *counters) OnApply(_ context.Context, e hook.Apply) {
	if e.Err == nil {
		c.applied.Add(int64(e.Applied))
		c.dropped.Add(int64(e.Stale + e.Duplicate + e.Tombstoned + e.Ignored))
	}
}

// requestID is a value a service keeps in its contexts.
type requestID struct{}

// requestIDPropagator carries it as the header "x-request-id" (an
// OpenTelemetry propagator carries a traceparent the same way).
type requestIDPropagator struct{}

func (requestIDPropagator) Inject(ctx context.Context, c hook.Carrier) {
	if id, ok := ctx.Value(requestID{}).(string); ok {
		c.Set("x-request-id", id)
	}
}

func (requestIDPropagator) Extract(ctx context.Context, c hook.Carrier) context.Context {
	if id := c.Get("x-request-id"); id != "" {
		return context.WithValue(ctx, requestID{}, id)
	}
	return ctx
}

func (requestIDPropagator) Fields() []string { return []string{"x-request-id"} }

// Example counts events with one Hooks value on master, relay and
// consumer, and carries a request ID from the capturing call's context to
// the replica handler's.
func Example() {
	ctx := context.Background()
	// One connection each: an in-memory SQLite database lives in its
	// connection.
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", ":memory:")
		if err != nil {
			panic(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec(`CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
			cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`); err != nil {
			panic(err)
		}
		if err := sqldialect.SQLite().Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
			panic(err)
		}
		return db
	}
	masterDB, replicaDB := open(), open()
	defer masterDB.Close()
	defer replicaDB.Close()
	broker := memory.NewBroker(nil)
	pub := broker.Publisher()
	defer pub.Close()
	metrics := &counters{}

	relay, _ := outbox.NewRelay(databasesql.New(masterDB, sqldialect.SQLite()), &outbox.Config{Publisher: pub, Hooks: metrics})
	master, _ := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.SQLite()), &cqrsync.MasterConfig{Relay: relay, Hooks: metrics, Propagator: requestIDPropagator{}})
	_ = master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account"})
	_ = relay.Start(ctx)
	defer relay.Stop()

	handled := make(chan string, 1)
	replica, _ := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.SQLite()), &cqrsync.ReplicaConfig{Propagator: requestIDPropagator{}})
	_ = replica.Register(&cqrsync.ReplicaModel{CQRSID: "account", Table: "account",
		OnSave: func(ctx context.Context, _ sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
			handled <- fmt.Sprintf("account %v saved for request %v", e.PK, ctx.Value(requestID{}))
			return nil
		}})
	consumer, _ := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: broker.Subscriber(), Publisher: pub, Queue: "billing", Hooks: metrics,
	})
	_ = consumer.Start(ctx)
	defer consumer.Stop()
	<-consumer.Started()

	reqCtx := context.WithValue(ctx, requestID{}, "req-42")
	err := cqrsync.RunTx(reqCtx, masterDB, master, func(tx *sql.Tx) error {
		return master.Insert(reqCtx, tx, "account", map[string]any{"id": 1, "name": "Ada"})
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(<-handled)
	_ = consumer.Stop() // waits for the batch to finish, hooks included
	fmt.Printf("captured %d, applied %d, dropped %d\n", metrics.captured.Load(), metrics.applied.Load(), metrics.dropped.Load())
	// Output:
	// account 1 saved for request req-42
	// captured 1, applied 1, dropped 0
}

package cqrsync_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
)

// recorder is a hook.Hooks that keeps every call; wait blocks until a
// condition on them holds.
type recorder struct {
	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every call
	captures    []hook.Capture
	claims      []hook.Claim
	publishes   []hook.Publish
	applies     []hook.Apply
	retries     []hook.Retry
	deadLetters []hook.DeadLetter
	lags        []hook.Lag
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

// record appends e to *list and signals waiters.
func record[E any](r *recorder, list *[]E, e E) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) OnCapture(_ context.Context, e hook.Capture)       { record(r, &r.captures, e) }
func (r *recorder) OnClaim(_ context.Context, e hook.Claim)           { record(r, &r.claims, e) }
func (r *recorder) OnPublish(_ context.Context, e hook.Publish)       { record(r, &r.publishes, e) }
func (r *recorder) OnApply(_ context.Context, e hook.Apply)           { record(r, &r.applies, e) }
func (r *recorder) OnRetry(_ context.Context, e hook.Retry)           { record(r, &r.retries, e) }
func (r *recorder) OnDeadLetter(_ context.Context, e hook.DeadLetter) { record(r, &r.deadLetters, e) }
func (r *recorder) OnLag(_ context.Context, e hook.Lag)               { record(r, &r.lags, e) }

// wait blocks until cond, called under the lock, holds.
func (r *recorder) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// committedApplies sums the outcomes of the batches that committed.
func (r *recorder) committedApplies() hook.Apply {
	var sum hook.Apply
	for _, a := range r.applies {
		if a.Err != nil {
			continue
		}
		sum.CQRSID = a.CQRSID
		sum.Size += a.Size
		sum.Applied += a.Applied
		sum.Stale += a.Stale
		sum.Duplicate += a.Duplicate
		sum.Tombstoned += a.Tombstoned
		sum.Ignored += a.Ignored
	}
	return sum
}

// masterWithRelay is a SQLite master whose relay (in the same process, woken
// after commit) publishes to pub.
func masterWithRelay(t *testing.T, pub transport.Publisher, cfg cqrsync.MasterConfig, relayHooks hook.Hooks) (*sql.DB, *cqrsync.Master[*sql.Tx]) {
	t.Helper()
	db := cqrsynctesting.OpenSQLite(t, vectorTables["djpeer_basic"])
	relay, err := outbox.NewRelay(databasesql.New(db, sqldialect.SQLite()), &outbox.Config{Publisher: pub,
		PollInterval: time.Hour, Hooks: relayHooks, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Relay = relay
	master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "djpeer_basic", Table: "djpeer_basic"}); err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop() })
	return db, master
}

// captureRow inserts djpeer_basic row id on the master and captures it, in
// one transaction run by RunTx.
func captureRow(ctx context.Context, t *testing.T, db *sql.DB, master *cqrsync.Master[*sql.Tx], id int64) {
	t.Helper()
	err := cqrsync.RunTx(ctx, db, master, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO djpeer_basic (id, char_field, int_field) VALUES (?, 'c', 1)", id); err != nil {
			return err
		}
		return master.Create(ctx, tx, "djpeer_basic", id)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHooksObserveEveryPoint: one hooks value on the master, the relay and
// the consumer sees every hook point with the right figures.
func TestHooksObserveEveryPoint(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	b := setupConsumer(t, consumerOpts{
		workers: 1,
		retry:   cqrsync.RetryPolicy{MaxRetries: 1, Delay: func(int) time.Duration { return time.Millisecond }},
		config:  func(c *cqrsync.ConsumerConfig) { c.Hooks = rec },
	})
	masterDB, master := masterWithRelay(t, b.pub, cqrsync.MasterConfig{Hooks: rec}, rec)

	// A capture, claimed, published and applied.
	captureRow(t.Context(), t, masterDB, master, 1)
	rec.wait(t, "the captured event's publish and lag", func() bool { return len(rec.publishes) == 1 && len(rec.lags) == 1 })
	rec.mu.Lock()
	if len(rec.captures) != 1 {
		t.Fatalf("captures = %+v, want 1", rec.captures)
	}
	if c := rec.captures[0]; c.CQRSID != "djpeer_basic" || c.Signal != "SAVE" || c.Rows != 1 || c.Duration <= 0 || c.Err != nil {
		t.Errorf("capture = %+v, want djpeer_basic SAVE of 1 row, a duration, no error", c)
	}
	var claimed int
	for _, c := range rec.claims {
		claimed += c.Rows
		if c.Duration <= 0 || c.Err != nil {
			t.Errorf("claim = %+v, want a duration and no error", c)
		}
	}
	if claimed != 1 {
		t.Errorf("claims = %+v, want 1 row claimed in all", rec.claims)
	}
	if len(rec.publishes) != 1 || rec.publishes[0].Events != 1 || rec.publishes[0].Failed != 0 || rec.publishes[0].Duration <= 0 || rec.publishes[0].Err != nil {
		t.Errorf("publishes = %+v, want one of 1 event, none failed, with a duration", rec.publishes)
	}
	if l := rec.lags[0]; l.CQRSID != "djpeer_basic" || l.Lag <= 0 {
		t.Errorf("lag = %+v, want djpeer_basic and a positive lag", l)
	}
	rec.mu.Unlock()

	// Every outcome, in one publish.
	t0 := time.Now().Add(-time.Hour)
	b.publishAll(t,
		saveBody("SAVE", 2, 1, 1, t0),                // created
		saveBody("SAVE", 2, 1, 1, t0),                // duplicate
		saveBody("SAVE", 2, 0, 1, t0),                // stale
		deleteBody(3, 5, t0.Add(time.Minute)),        // no row: ignored
		saveBody("SAVE", 3, 2, 1, t0),                // older than the delete: tombstoned
		saveBody("SYNC", 4, 0, 1, t0.Add(time.Hour)), // created
	)
	rec.wait(t, "the outcomes", func() bool { return rec.committedApplies().Size == 7 })

	// A failing event: retried once, then dead-lettered.
	b.publishAll(t, saveBody("SAVE", 5, 1, 666, t0)) // violates the replica's CHECK
	rec.wait(t, "the dead letter", func() bool { return len(rec.deadLetters) == 1 })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := hook.Apply{CQRSID: "djpeer_basic", Size: 7, Applied: 3, Stale: 1, Duplicate: 1, Tombstoned: 1, Ignored: 1}
	if got := rec.committedApplies(); got != want {
		t.Errorf("committed batches sum to %+v, want %+v", got, want)
	}
	failed := 0
	for _, a := range rec.applies {
		if a.Duration <= 0 {
			t.Errorf("apply %+v has no duration", a)
		}
		if a.Err != nil {
			failed++
			if a.CQRSID != "djpeer_basic" || a.Size != 1 || !strings.Contains(a.Err.Error(), "int_field") {
				t.Errorf("failed apply = %+v, want djpeer_basic, 1 event, the CHECK's error", a)
			}
		}
	}
	if failed < 2 { // the first try and the retry (each a batch, then alone)
		t.Errorf("%d failed applies, want at least 2", failed)
	}
	if len(rec.retries) != 1 {
		t.Fatalf("retries = %+v, want 1", rec.retries)
	}
	if r := rec.retries[0]; r.CQRSID != "djpeer_basic" || r.Attempt != 1 || r.Delay != time.Millisecond || r.Reason == nil || !strings.Contains(r.Reason.Error(), "int_field") {
		t.Errorf("retry = %+v, want djpeer_basic attempt 1 after 1ms for the CHECK", r)
	}
	if d := rec.deadLetters[0]; d.CQRSID != "djpeer_basic" || d.Reason == nil || !strings.Contains(d.Reason.Error(), "int_field") {
		t.Errorf("dead letter = %+v, want djpeer_basic for the CHECK", d)
	}
	if len(rec.lags) != 3 { // the captured row, rows 2 and 4
		t.Errorf("lags = %+v, want 3", rec.lags)
	}
}

// traceKey holds a W3C traceparent in a context.
type traceKey struct{}

// traceparentPropagator carries traceKey as the traceparent header, as
// OpenTelemetry's TraceContext propagator does.
type traceparentPropagator struct{}

func (traceparentPropagator) Inject(ctx context.Context, c hook.Carrier) {
	if tp, ok := ctx.Value(traceKey{}).(string); ok {
		c.Set("traceparent", tp)
	}
}

func (traceparentPropagator) Extract(ctx context.Context, c hook.Carrier) context.Context {
	if tp := c.Get("traceparent"); tp != "" {
		return context.WithValue(ctx, traceKey{}, tp)
	}
	return ctx
}

func (traceparentPropagator) Fields() []string { return []string{"traceparent"} }

// handled is what a replica handler saw of an event's context.
type handled struct {
	traceparent, correlationID string
}

// tracingReplica is a replica of djpeer_basic whose handler reports the
// traceparent and correlation id of its context.
func tracingReplica(t *testing.T, db sqldialect.DB) (*cqrsync.Replica, <-chan handled) {
	t.Helper()
	seen := make(chan handled, 10)
	replica, err := cqrsync.NewReplica(db, &cqrsync.ReplicaConfig{Propagator: traceparentPropagator{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic",
		OnSave: func(ctx context.Context, _ sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
			tp, _ := ctx.Value(traceKey{}).(string)
			seen <- handled{traceparent: tp, correlationID: hook.Headers(ctx)[hook.HeaderCorrelationID]}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return replica, seen
}

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// captureTraced captures row 1 with a traceparent in the capture's context.
func captureTraced(t *testing.T, pub transport.Publisher) {
	t.Helper()
	corr := func(context.Context, cqrsync.SignalType, string, any, string) string { return "corr-1" }
	masterDB, master := masterWithRelay(t, pub, cqrsync.MasterConfig{Propagator: traceparentPropagator{}, CorrelationID: corr}, nil)
	captureRow(context.WithValue(t.Context(), traceKey{}, testTraceparent), t, masterDB, master, 1)
}

func wantTraced(t *testing.T, seen <-chan handled) {
	t.Helper()
	select {
	case h := <-seen:
		if h.traceparent != testTraceparent || h.correlationID != "corr-1" {
			t.Fatalf("handler context has traceparent %q, correlation id %q; want %q, corr-1", h.traceparent, h.correlationID, testTraceparent)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler never ran")
	}
}

// TestTraceContextCrossesOutbox: a traceparent in the master's context
// arrives in the replica handler's context, through the outbox's headers
// column, the relay and the memory transport.
func TestTraceContextCrossesOutbox(t *testing.T) {
	t.Parallel()
	var seen <-chan handled
	b := setupConsumer(t, consumerOpts{config: func(c *cqrsync.ConsumerConfig) {
		c.Replica, seen = tracingReplica(t, c.Replica.DB())
	}})
	captureTraced(t, b.pub)
	wantTraced(t, seen)
}

// TestRabbitMQTraceContext: the same through a real RabbitMQ, to a
// PostgreSQL replica.
func TestRabbitMQTraceContext(t *testing.T) {
	t.Parallel()
	b := setupRabbit(t)
	var seen <-chan handled
	b.replica, seen = tracingReplica(t, databasesql.New(b.replicaDB, sqldialect.Postgres()))
	b.consumer(t, cqrsync.RetryPolicy{})
	captureTraced(t, b.tr)
	wantTraced(t, seen)
}

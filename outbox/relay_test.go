package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testBundle struct {
	db     *sql.DB
	ex     sqldialect.Executor
	broker *memory.Broker
	relay  *outbox.Relay
	sub    transport.Subscription
	failOn atomic.Value // func(*transport.Message) error
}

func setup(t *testing.T, cfg outbox.Config) *testBundle {
	t.Helper()
	b := &testBundle{db: cqrsynctesting.OpenSQLite(t)}
	b.ex = sqldialect.FromSQL(b.db)
	b.failOn.Store(func(*transport.Message) error { return nil })
	b.broker = memory.NewBroker(&memory.Config{FailPublish: func(m *transport.Message) error {
		return b.failOn.Load().(func(*transport.Message) error)(m)
	}})
	pub := b.broker.Publisher()
	t.Cleanup(func() { _ = pub.Close() })
	sub, err := b.broker.Subscriber().Subscribe(t.Context(), &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"item"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	b.sub = sub
	cfg.Publisher = pub
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	b.relay, err = outbox.NewRelay(databasesql.New(b.db, sqldialect.SQLite()), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *testBundle) insert(t *testing.T, n int) {
	t.Helper()
	rows := make([]sqldialect.OutboxRow, n)
	for i := range rows {
		rows[i] = sqldialect.OutboxRow{CQRSID: "item", Body: []byte(fmt.Sprintf("event %d", i)), CreatedAt: time.Now()}
	}
	if err := sqldialect.SQLite().InsertOutbox(t.Context(), b.ex, rows); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) start(t *testing.T) {
	t.Helper()
	if err := b.relay.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.relay.Stop() })
}

// receive takes n deliveries and acks them, returning their bodies.
func (b *testBundle) receive(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case d := <-b.sub.Deliveries():
			got = append(got, string(d.Body))
			if err := b.sub.Ack(t.Context(), d.ID); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("received %d of %d events", len(got), n)
		}
	}
	return got
}

func (b *testBundle) backlog(t *testing.T) int64 {
	t.Helper()
	st, err := b.relay.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Rows
}

func TestRelayPublishesInOrderAndDeletesAfterConfirm(t *testing.T) {
	t.Parallel()
	b := setup(t, outbox.Config{BatchSize: 7})
	b.insert(t, 30)
	b.start(t)
	got := b.receive(t, 30)
	for i, body := range got {
		if body != fmt.Sprintf("event %d", i) {
			t.Fatalf("event %d = %q: not in outbox order", i, body)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.backlog(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d events after they were published", b.backlog(t))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRelayKeepsEventsWhileBrokerIsDown: publishing fails for a while;
// nothing leaves the outbox until the broker accepts it, then everything
// arrives.
func TestRelayKeepsEventsWhileBrokerIsDown(t *testing.T) {
	t.Parallel()
	b := setup(t, outbox.Config{})
	var attempts atomic.Int64
	b.failOn.Store(func(*transport.Message) error {
		attempts.Add(1)
		return errors.New("broker down")
	})
	b.insert(t, 5)
	b.start(t)
	deadline := time.Now().Add(5 * time.Second)
	for attempts.Load() < 15 { // several retries, with backoff
		if time.Now().After(deadline) {
			t.Fatal("relay did not retry")
		}
		time.Sleep(time.Millisecond)
	}
	if n := b.backlog(t); n != 5 {
		t.Fatalf("backlog = %d while the broker is down, want 5", n)
	}
	b.failOn.Store(func(*transport.Message) error { return nil })
	got := b.receive(t, 5)
	if strings.Join(got, ",") != "event 0,event 1,event 2,event 3,event 4" {
		t.Fatalf("after recovery got %v", got)
	}
}

// TestRelayPartialFailure: the broker refuses one message of a batch; the
// others are deleted, the refused one stays and goes out on the next try.
func TestRelayPartialFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, outbox.Config{})
	var refused atomic.Bool
	b.failOn.Store(func(m *transport.Message) error {
		if string(m.Body) == "event 2" && refused.CompareAndSwap(false, true) {
			return errors.New("nacked")
		}
		return nil
	})
	b.insert(t, 4)
	n, err := b.relay.RunOnce(t.Context())
	var pe *transport.PublishError
	if n != 4 || !errors.As(err, &pe) {
		t.Fatalf("RunOnce = %d, %v; want 4 claimed and a PublishError", n, err)
	}
	if got := b.backlog(t); got != 1 {
		t.Fatalf("backlog after partial failure = %d, want 1 (the refused event)", got)
	}
	if n, err := b.relay.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("second RunOnce = %d, %v; want the refused event, published", n, err)
	}
	got := b.receive(t, 4)
	if got[3] != "event 2" {
		t.Fatalf("events = %v, want event 2 last", got)
	}
}

// TestRelayWakesOnNotify: with a poll interval of an hour, a Notify alone
// gets the event out.
func TestRelayWakesOnNotify(t *testing.T) {
	t.Parallel()
	b := setup(t, outbox.Config{PollInterval: time.Hour})
	b.start(t)
	<-b.relay.Started()
	// Let the relay's first, empty, look pass, so only Notify can wake it.
	deadline := time.Now().Add(5 * time.Second)
	for outbox.Looks(b.relay) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay never looked at the outbox")
		}
		time.Sleep(time.Millisecond)
	}
	b.insert(t, 1)
	b.relay.Notify()
	b.receive(t, 1)
}

// TestRelaysShareOneOutbox: two relays on one database deliver every event,
// none twice.
func TestRelaysShareOneOutbox(t *testing.T) {
	t.Parallel()
	b := setup(t, outbox.Config{BatchSize: 10})
	second, err := outbox.NewRelay(databasesql.New(b.db, sqldialect.SQLite()), &outbox.Config{Publisher: b.broker.Publisher(), BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	b.insert(t, 300)
	var wg sync.WaitGroup
	for _, r := range []*outbox.Relay{b.relay, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := r.RunOnce(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	got := b.receive(t, 300)
	seen := map[string]bool{}
	for _, body := range got {
		if seen[body] {
			t.Fatalf("%s delivered twice", body)
		}
		seen[body] = true
	}
	if b.relay.Published()+second.Published() != 300 {
		t.Fatalf("relays published %d + %d, want 300", b.relay.Published(), second.Published())
	}
}

func TestRelayStopIsClean(t *testing.T) {
	t.Parallel()
	b := setup(t, outbox.Config{})
	b.start(t)
	<-b.relay.Started()
	if err := b.relay.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	b.insert(t, 1)
	if n := b.backlog(t); n != 1 {
		t.Fatalf("backlog = %d after Stop, want the event left for the next relay", n)
	}
}

func TestRelayConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := outbox.NewRelay(databasesql.New(cqrsynctesting.OpenSQLite(t), sqldialect.SQLite()), &outbox.Config{Lease: time.Second, PublishTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("NewRelay accepted an empty config")
	}
	for _, want := range []string{"Publisher is nil", "must exceed PublishTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := outbox.NewRelay(nil, &outbox.Config{}); err == nil || !strings.Contains(err.Error(), "db is nil") {
		t.Errorf("NewRelay without a database = %v, want an error saying db is nil", err)
	}
}

// unroutablePublisher accepts everything but reports the second message of
// every batch as routed to no queue.
type unroutablePublisher struct{ got []string }

func (p *unroutablePublisher) Publish(_ context.Context, msgs []transport.Message) error {
	for _, m := range msgs {
		p.got = append(p.got, string(m.Body))
	}
	return &transport.PublishError{Unroutable: []int{1}, Err: errors.New("NO_ROUTE")}
}

func (p *unroutablePublisher) Close() error { return nil }

// TestRelayDropsUnroutable: an event no queue is bound for cannot be
// delivered by sending it again; the relay drops it instead of retrying
// forever, and the batch counts as published.
func TestRelayDropsUnroutable(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t)
	pub := &unroutablePublisher{}
	relay, err := outbox.NewRelay(databasesql.New(db, sqldialect.SQLite()), &outbox.Config{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	rows := []sqldialect.OutboxRow{{CQRSID: "item", Body: []byte("a"), CreatedAt: time.Now()}, {CQRSID: "nobody", Body: []byte("b"), CreatedAt: time.Now()}}
	if err := sqldialect.SQLite().InsertOutbox(t.Context(), sqldialect.FromSQL(db), rows); err != nil {
		t.Fatal(err)
	}
	if n, err := relay.RunOnce(t.Context()); n != 2 || err != nil {
		t.Fatalf("RunOnce = %d, %v; want 2 and no error", n, err)
	}
	st, err := relay.Stats(t.Context())
	if err != nil || st.Rows != 0 {
		t.Fatalf("backlog = %+v, %v; want empty", st, err)
	}
}

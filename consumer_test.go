package cqrsync_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/amqptopology"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// replicaBasicDDL is the replica table of djpeer_basic.
const replicaBasicDDL = cqrsynctesting.ReplicaBasicDDL

// consumerBundle is a replica database consuming a memory broker's queue.
type consumerBundle struct {
	db       *sql.DB
	broker   *memory.Broker
	pub      transport.Publisher
	consumer *cqrsync.Consumer
	logs     *syncBuffer
	queue    string
}

type consumerOpts struct {
	workers, batch int
	retry          cqrsync.RetryPolicy
	chaos          *memory.Chaos
	delayed        bool // the broker delays redeliveries (memory.Config.DelayedRedelivery)
	noStart        bool
	config         func(*cqrsync.ConsumerConfig) // adjusts the consumer's config
	// db, dialect and model replace the SQLite replica of djpeer_basic.
	db      *sql.DB
	dialect sqldialect.Dialect
	model   *cqrsync.ReplicaModel
}

func setupConsumer(t *testing.T, o consumerOpts) *consumerBundle {
	t.Helper()
	b := &consumerBundle{queue: "djpeer_replica", logs: &syncBuffer{}} // the vectors' queue
	t.Cleanup(func() {
		if t.Failed() {
			logs := b.logs.String()
			t.Logf("consumer logs (last 3000 bytes):\n%s", logs[max(0, len(logs)-3000):])
		}
	})
	dialect, model := o.dialect, o.model
	b.db = o.db
	if b.db == nil {
		b.db, dialect = cqrsynctesting.OpenSQLite(t, replicaBasicDDL), sqldialect.SQLite()
	}
	if model == nil {
		model = &cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: map[string]cqrsync.ValueType{"decimal_field": cqrsync.TypeDecimal}}
	}
	b.broker = memory.NewBroker(&memory.Config{Chaos: o.chaos, DelayedRedelivery: o.delayed})
	b.pub = b.broker.Publisher()
	if err := b.broker.DeclareQueue(b.queue, "djpeer_basic"); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	replica, err := cqrsync.NewReplica(databasesql.New(b.db, dialect), &cqrsync.ReplicaConfig{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(model); err != nil {
		t.Fatal(err)
	}
	retry := o.retry
	if retry.Delay == nil {
		retry.Delay = func(int) time.Duration { return time.Millisecond }
	}
	sub := b.broker.Subscriber()
	t.Cleanup(func() { _ = sub.Close(); _ = b.pub.Close() })
	cfg := &cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: sub, Publisher: b.pub, Queue: b.queue,
		Workers: o.workers, BatchSize: o.batch, Retry: retry, Logger: logger,
	}
	if o.config != nil {
		o.config(cfg)
	}
	b.consumer, err = cqrsync.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !o.noStart {
		b.start(t)
	}
	return b
}

func (b *consumerBundle) start(t *testing.T) {
	t.Helper()
	if err := b.consumer.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.consumer.Stop() })
	<-b.consumer.Started()
}

func (b *consumerBundle) publish(t *testing.T, routingKey string, body string) {
	t.Helper()
	id, q := amqptopology.ParseRoutingKey(routingKey)
	if err := b.pub.Publish(t.Context(), []transport.Message{{CQRSID: id, Queue: q, Body: []byte(body)}}); err != nil {
		t.Fatal(err)
	}
}

// settle waits until the queue holds nothing, ready or unacknowledged.
func (b *consumerBundle) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second) // generous: CI runs this beside everything else, with -race
	for b.broker.QueueLen(b.queue) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for queue %s to drain: %d messages left, consumer stats %+v", b.queue, b.broker.QueueLen(b.queue), b.consumer.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// row returns (cqrs_revision, int_field) of row id, or ok=false.
func (b *consumerBundle) row(t *testing.T, id int64) (rev, intField int64, ok bool) {
	t.Helper()
	err := b.db.QueryRowContext(t.Context(), "SELECT cqrs_revision, int_field FROM djpeer_basic WHERE id = ?", id).Scan(&rev, &intField)
	if err == sql.ErrNoRows {
		return 0, 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return rev, intField, true
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	cqrsynctesting.Eventually(t, timeout, fmt.Sprintf(format, args...), cond)
}

// syncBuffer is a buffer safe for concurrent writers.
type syncBuffer = cqrsynctesting.SyncBuffer

// saveBody is a SAVE (or SYNC) of djpeer_basic row id.
func saveBody(signal string, id, rev, intField int64, updated time.Time) string {
	return fmt.Sprintf(`{"signal_type":%q,"cqrs_id":"djpeer_basic","instance_data":{"id":%d,"cqrs_revision":%d,"cqrs_updated":%q,`+
		`"int_field":%d,"char_field":"c","bool_field":false},"previous_data":null,"instance_pk":%d,"correlation_id":"corr-%d-%d","retries":0,`+
		`"expires":"2099-01-01T00:00:00+00:00","meta":{}}`, signal, id, rev, cqrsync.FormatDateTime(updated), intField, id, id, rev)
}

func deleteBody(id, rev int64, updated time.Time) string {
	return fmt.Sprintf(`{"signal_type":"DELETE","cqrs_id":"djpeer_basic","instance_data":{"id":%d,"cqrs_revision":%d,"cqrs_updated":%q},`+
		`"previous_data":null,"instance_pk":%d,"correlation_id":null,"retries":0,"expires":"2099-01-01T00:00:00+00:00","meta":{}}`,
		id, rev, cqrsync.FormatDateTime(updated), id)
}

// TestConsumerReplaysDjangoReplicaSemantics publishes the hand-made
// messages of replica_semantics.json to our consumer, in order, and checks
// the row after each step against what the Django replica did — except
// where cqrsync deliberately does better, each listed with its reason.
func TestConsumerReplaysDjangoReplicaSemantics(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(cqrsynctesting.VectorsDir(t), "replica_semantics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Steps []struct {
			Step            string         `json:"step"`
			RoutingKey      string         `json:"routing_key"`
			PublishedBody   string         `json:"published_body"`
			ReplicaRowAfter map[string]any `json:"replica_row_after"`
			Published       []struct {
				RoutingKey string `json:"routing_key"`
			} `json:"messages_published_by_replica"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Steps) < 15 {
		t.Fatalf("replica_semantics.json has %d steps, want at least 15", len(doc.Steps))
	}
	b := setupConsumer(t, consumerOpts{retry: cqrsync.RetryPolicy{MaxRetries: 1}}) // the capture ran with CQRS_MAX_RETRIES=1
	dlq := transport.DeadLetterQueue(b.queue)
	// kept is the row cqrsync keeps where django-cqrs let an older SYNC
	// downgrade it, until a newer revision replaces it on both.
	var kept map[string]any
	for i, step := range doc.Steps {
		dlqBefore := b.broker.QueueLen(dlq)
		b.publish(t, step.RoutingKey, step.PublishedBody)
		b.settle(t)

		wantRow := step.ReplicaRowAfter
		wantDead := 0
		for _, m := range step.Published {
			if strings.Contains(m.RoutingKey, "dead_letter_") {
				wantDead++
			}
		}
		switch {
		case strings.HasPrefix(step.Step, "SAVE without \"expires\""):
			// django-cqrs's replica-only worker crashes on this message (a
			// poison message); cqrsync gives it the default TTL, as the
			// contract says, and applies it by the rules: revision 2 over
			// the row the SYNC step left (stale here, see kept).
			wantRow = map[string]any{"cqrs_revision": float64(2), "int_field": float64(20)}
		case strings.HasPrefix(step.Step, "body that is not JSON"), strings.HasPrefix(step.Step, "JSON body without"):
			// django-cqrs drops malformed bodies; cqrsync keeps them in the
			// dead-letter queue, with the reason, for an operator.
			wantDead = 1
		case strings.HasPrefix(step.Step, "SAVE revision 5 after the DELETE"):
			// django-cqrs resurrects the deleted row; cqrsync's tombstone
			// drops the late SAVE.
			wantRow = nil
		case strings.HasPrefix(step.Step, "SYNC revision 1 (older)"):
			// django-cqrs downgrades the row; cqrsync drops a SYNC older
			// than the stored row (see Replica), so the row stays at
			// revision 3, and the next SAVEs of revisions 2 and 3 are stale
			// and duplicate there.
			kept = map[string]any{"cqrs_revision": float64(3), "int_field": float64(3)}
		}
		if kept != nil {
			if wantRow != nil && wantRow["cqrs_revision"].(float64) <= kept["cqrs_revision"].(float64) {
				wantRow = kept
			} else {
				kept = nil
			}
		}
		if got := b.broker.QueueLen(dlq) - dlqBefore; got != wantDead {
			t.Errorf("step %d (%s): %d new dead letters, want %d", i, step.Step, got, wantDead)
		}
		rev, intField, ok := b.row(t, 424242)
		switch {
		case wantRow == nil && ok:
			t.Errorf("step %d (%s): row exists (revision %d), want none", i, step.Step, rev)
		case wantRow != nil && !ok:
			t.Errorf("step %d (%s): row missing, want revision %v", i, step.Step, wantRow["cqrs_revision"])
		case wantRow != nil && (float64(rev) != wantRow["cqrs_revision"] || float64(intField) != wantRow["int_field"]):
			t.Errorf("step %d (%s): row at revision %d with int_field %d, want %v and %v", i, step.Step, rev, intField, wantRow["cqrs_revision"], wantRow["int_field"])
		}
	}
	logs := b.logs.String()
	for _, want := range []string{"lost packages", "lost=2", "stale event dropped", "duplicate event"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	// The consumer kept running through every bad message.
	select {
	case <-b.consumer.Done():
		t.Fatal("consumer stopped")
	default:
	}
}

func TestConsumerDuplicateDeliveryHasNoEffect(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, consumerOpts{})
	body := saveBody("SAVE", 1, 0, 10, time.Now())
	b.publish(t, "djpeer_basic", body)
	b.publish(t, "djpeer_basic", body)
	b.settle(t)
	if rev, v, ok := b.row(t, 1); !ok || rev != 0 || v != 10 {
		t.Fatalf("row = rev %d int %d (exists %v), want rev 0 int 10", rev, v, ok)
	}
	if st := b.consumer.Stats(); st.Applied != 1 || st.Dropped != 1 {
		t.Fatalf("stats = %+v, want 1 applied and 1 dropped", st)
	}
}

func TestConsumerOutOfOrderKeepsNewer(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, consumerOpts{})
	now := time.Now()
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 2, 20, now.Add(2*time.Second)))
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 1, 10, now.Add(time.Second)))
	b.settle(t)
	if rev, v, _ := b.row(t, 1); rev != 2 || v != 20 {
		t.Fatalf("row = rev %d int %d, want the newer: rev 2 int 20", rev, v)
	}
	// A DELETE overtaken by an older SAVE: the row stays deleted.
	b.publish(t, "djpeer_basic", deleteBody(1, 3, now.Add(3*time.Second)))
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 2, 20, now.Add(2*time.Second)))
	b.settle(t)
	if _, _, ok := b.row(t, 1); ok {
		t.Fatal("a SAVE older than the DELETE brought the row back")
	}
}

// TestConsumerIsolatesPoisonEvent applies a batch in which one event
// violates a replica constraint: the others are applied, the bad one is
// retried and then dead-lettered, and the consumer goes on.
func TestConsumerIsolatesPoisonEvent(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, consumerOpts{workers: 1, batch: 50, noStart: true, retry: cqrsync.RetryPolicy{MaxRetries: 2}})
	now := time.Now()
	var msgs []transport.Message
	for i := int64(1); i <= 20; i++ {
		v := i
		if i == 7 {
			v = 666 // violates CHECK (int_field <> 666)
		}
		msgs = append(msgs, transport.Message{CQRSID: "djpeer_basic", Body: []byte(saveBody("SAVE", i, 0, v, now))})
	}
	if err := b.pub.Publish(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	b.start(t) // all 20 arrive in one batch
	b.settle(t)
	for i := int64(1); i <= 20; i++ {
		_, _, ok := b.row(t, i)
		if ok == (i == 7) {
			t.Errorf("row %d exists = %v", i, ok)
		}
	}
	st := b.consumer.Stats()
	if st.Applied != 19 || st.Retried != 2 || st.DeadLettered != 1 {
		t.Fatalf("stats = %+v, want 19 applied, 2 retries, 1 dead letter", st)
	}
	var reason string
	_, err := b.broker.ScanDeadLetters(t.Context(), transport.DeadLetterQueue(b.queue), func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		reason = m.Headers[cqrsync.HeaderDeadLetterReason]
		if !bytes.Contains(m.Body, []byte(`"retries":2`)) || m.Expiration != cqrsync.DefaultDeadLetterTTL {
			t.Errorf("dead letter = %s (expiration %v), want retries 2 and the default TTL", m.Body, m.Expiration)
		}
		return transport.DeadLetterKeep, nil
	})
	if err != nil || !strings.Contains(reason, "CHECK constraint") {
		t.Fatalf("dead letter reason = %q (%v), want the constraint error", reason, err)
	}
}

// TestConsumerConvergesUnderChaos sends every change of many rows through a
// broker that duplicates and reorders, with the connection cut midway;
// the replica must end equal to the last state of every row.
func TestConsumerConvergesUnderChaos(t *testing.T) {
	t.Parallel()
	seed := rand.Int64()
	t.Logf("chaos seed %d", seed)
	b := setupConsumer(t, consumerOpts{workers: 4, batch: 20, chaos: &memory.Chaos{DuplicateRate: 0.2, ReorderRate: 0.3, ReorderWindow: 10, Seed: seed}})
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	type state struct {
		rev     int64
		val     int64
		deleted bool
	}
	final := map[int64]*state{}
	t0 := time.Now()
	step := 0
	var msgs []transport.Message
	for range 1000 {
		id := int64(1 + r.IntN(60))
		st := final[id]
		step++
		at := t0.Add(time.Duration(step) * time.Millisecond)
		switch {
		case st == nil || st.deleted:
			// A cqrsync master continues a re-created key's revisions.
			rev := int64(0)
			if st != nil {
				rev = st.rev + 1
			}
			st = &state{rev: rev, val: r.Int64N(600)}
			final[id] = st
			msgs = append(msgs, transport.Message{CQRSID: "djpeer_basic", Body: []byte(saveBody("SAVE", id, rev, st.val, at))})
		case r.IntN(10) == 0:
			st.rev++
			st.deleted = true
			msgs = append(msgs, transport.Message{CQRSID: "djpeer_basic", Body: []byte(deleteBody(id, st.rev, at))})
		default:
			st.rev++
			st.val = r.Int64N(600) // below 666, the CHECK constraint's poison value
			msgs = append(msgs, transport.Message{CQRSID: "djpeer_basic", Body: []byte(saveBody("SAVE", id, st.rev, st.val, at))})
		}
	}
	for i, m := range msgs {
		if err := b.pub.Publish(t.Context(), []transport.Message{m}); err != nil {
			t.Fatal(err)
		}
		if i == len(msgs)/2 {
			b.broker.CutConnections()
		}
	}
	b.settle(t)
	for id, st := range final {
		rev, val, ok := b.row(t, id)
		switch {
		case st.deleted && ok:
			t.Errorf("row %d exists at revision %d, want deleted (seed %d)", id, rev, seed)
		case !st.deleted && (!ok || rev != st.rev || val != st.val):
			t.Errorf("row %d = rev %d val %d (exists %v), want rev %d val %d (seed %d)", id, rev, val, ok, st.rev, st.val, seed)
		}
	}
}

func TestConsumerStopReturnsUnfinishedWork(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, consumerOpts{})
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 0, 1, time.Now()))
	b.settle(t)
	if err := b.consumer.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Published while stopped: kept by the broker for the next consumer.
	b.publish(t, "djpeer_basic", saveBody("SAVE", 2, 0, 2, time.Now()))
	if n := b.broker.QueueLen(b.queue); n != 1 {
		t.Fatalf("queue holds %d messages after Stop, want 1", n)
	}
}

func TestConsumerConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{Queue: "a.b"})
	if err == nil {
		t.Fatal("NewConsumer accepted an empty config")
	}
	for _, want := range []string{"Replica is nil", "Subscriber and Publisher", `Queue "a.b"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// logSubscriber declares what a log-based broker (Kafka) would: no
// per-message requeue, no putting a message into a queue by its name.
type logSubscriber struct{ transport.Subscriber }

func (logSubscriber) Capabilities() transport.Capabilities {
	c := memory.NewBroker(nil).Capabilities()
	c.NackRequeue, c.DirectToQueue = false, false
	return c
}

// TestConsumerConfigChecksCapabilities: the consumer reads what it needs of
// the transport from its declared capabilities, at NewConsumer, instead of
// finding out on the first failed event.
func TestConsumerConfigChecksCapabilities(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker(nil)
	_, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{Queue: "q", Subscriber: logSubscriber{broker.Subscriber()}, Publisher: broker.Publisher()})
	for _, want := range []string{"Capabilities.NackRequeue", "Capabilities.DirectToQueue"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewConsumer error %v does not mention %q", err, want)
		}
	}
	if !errors.Is(err, transport.ErrNotSupported) {
		t.Errorf("NewConsumer error %v does not wrap transport.ErrNotSupported", err)
	}
}

// nackDelayCounter counts the NackDelay calls on its subscriptions.
type nackDelayCounter struct {
	transport.Subscriber
	n *atomic.Int64
}

func (c nackDelayCounter) Subscribe(ctx context.Context, p *transport.SubscribeParams) (transport.Subscription, error) {
	s, err := c.Subscriber.Subscribe(ctx, p)
	if err != nil {
		return nil, err
	}
	return nackDelaySubscription{s, c.n}, nil
}

type nackDelaySubscription struct {
	transport.Subscription
	n *atomic.Int64
}

func (s nackDelaySubscription) NackDelay(ctx context.Context, delay time.Duration, ids ...uint64) error {
	s.n.Add(1)
	return s.Subscription.NackDelay(ctx, delay, ids...)
}

// TestConsumerRetriesOnTheBrokerWhenItCanDelay: on a transport that
// declares DelayedRedelivery, a failed event waits for its retry on the
// broker (NackDelay), not in the consumer, and its retries are counted
// from the deliveries, so it is dead-lettered after MaxRetries with the
// count in its body, as with the in-memory delay.
func TestConsumerRetriesOnTheBrokerWhenItCanDelay(t *testing.T) {
	t.Parallel()
	var nacks atomic.Int64
	b := setupConsumer(t, consumerOpts{
		delayed: true,
		retry:   cqrsync.RetryPolicy{MaxRetries: 2},
		config: func(c *cqrsync.ConsumerConfig) {
			c.Subscriber = nackDelayCounter{c.Subscriber, &nacks}
		},
	})
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 0, 666, time.Now()))
	dlq := transport.DeadLetterQueue(b.queue)
	waitFor(t, 10*time.Second, func() bool { return b.broker.QueueLen(dlq) == 1 }, "the event to be dead-lettered")
	b.settle(t)
	if n, st := nacks.Load(), b.consumer.Stats(); n != 2 || st.Retried != 2 {
		t.Fatalf("NackDelay called %d times, Retried %d; want 2 and 2", n, st.Retried)
	}
	b.wantOneDeadLetterRetried(t, 2)
}

// TestConsumerPausesWhileDatabaseIsDown: the replica database goes away
// (its connections are cut and refused); the consumer keeps the events,
// waits, and applies them all once the database is back, dead-lettering
// nothing.
func TestConsumerPausesWhileDatabaseIsDown(t *testing.T) {
	t.Parallel()
	proxy, dsn := cqrsynctesting.ProxiedPostgres(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqldialect.Postgres().Migrate(t.Context(), sqldialect.FromSQL(db)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE djpeer_basic (id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMPTZ NOT NULL,
		int_field INTEGER NOT NULL, char_field TEXT NOT NULL, bool_field BOOLEAN NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	replica, _ := cqrsync.NewReplica(databasesql.New(db, sqldialect.Postgres()), nil)
	_ = replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic"})
	broker := memory.NewBroker(nil)
	pub := broker.Publisher()
	defer pub.Close()
	c, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{Replica: replica, Subscriber: broker.Subscriber(), Publisher: pub,
		Queue: "q", Workers: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	<-c.Started()

	proxy.Cut()
	for i := int64(1); i <= 50; i++ {
		if err := pub.Publish(t.Context(), []transport.Message{{CQRSID: "djpeer_basic", Body: []byte(saveBody("SAVE", i, 0, i, time.Now()))}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() bool { return c.Stats().Received == 50 }, "the consumer to take the events")
	if n := broker.QueueLen("q"); n != 50 {
		t.Fatalf("with the database down the queue holds %d events, want all 50 (unacknowledged)", n)
	}
	proxy.Restore()
	waitFor(t, 30*time.Second, func() bool { return broker.QueueLen("q") == 0 }, "the events to be applied once the database is back")
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM djpeer_basic").Scan(&n); err != nil || n != 50 {
		t.Fatalf("replica rows = %d, %v; want 50", n, err)
	}
	if st := c.Stats(); st.DeadLettered != 0 || st.Retried != 0 {
		t.Fatalf("stats %+v: a database outage must not retry or dead-letter events", st)
	}
}

// TestConsumerBatchWait: with BatchWait, a worker waits for events that
// trickle in and applies them in one transaction; without it, it applies
// what it has at once (here: one event per transaction).
func TestConsumerBatchWait(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		wait    time.Duration
		wantTxs int
	}{{wait: 5 * time.Second, wantTxs: 1}, {wait: 0, wantTxs: 3}} {
		t.Run(fmt.Sprint(tc.wait), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			txs := map[sqldialect.Executor]int{} // one executor per batch transaction
			b := setupConsumer(t, consumerOpts{workers: 1, batch: 3, config: func(c *cqrsync.ConsumerConfig) {
				r, err := cqrsync.NewReplica(c.Replica.DB(), nil)
				if err != nil {
					t.Fatal(err)
				}
				err = r.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic",
					OnSave: func(_ context.Context, ex sqldialect.Executor, _ *cqrsync.ReplicaEvent) error {
						mu.Lock()
						defer mu.Unlock()
						txs[ex]++
						return nil
					}})
				if err != nil {
					t.Fatal(err)
				}
				c.Replica, c.BatchWait = r, tc.wait
			}})
			now := time.Now()
			for id := int64(1); id <= 3; id++ {
				b.publish(t, "djpeer_basic", saveBody("SAVE", id, 0, id, now))
				// Long enough for the worker to have taken the event
				// before the next one arrives.
				waitFor(t, 5*time.Second, func() bool {
					return b.broker.QueueLen(b.queue) == 0 || tc.wait > 0
				}, "event %d not taken", id)
				time.Sleep(30 * time.Millisecond)
			}
			b.settle(t)
			mu.Lock()
			defer mu.Unlock()
			if len(txs) != tc.wantTxs {
				t.Fatalf("BatchWait %v: 3 events trickling in took %d transactions, want %d", tc.wait, len(txs), tc.wantTxs)
			}
		})
	}
}

// unreachableSubscriber is a broker that cannot be reached: Subscribe
// closes entered, then waits until its context ends.
type unreachableSubscriber struct{ entered chan struct{} }

// Capabilities declares what RabbitMQ would.
func (unreachableSubscriber) Capabilities() transport.Capabilities {
	return memory.NewBroker(nil).Capabilities()
}

func (u unreachableSubscriber) Subscribe(ctx context.Context, _ *transport.SubscribeParams) (transport.Subscription, error) {
	close(u.entered)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (unreachableSubscriber) Close() error { return nil }

// TestConsumerStopWhileSubscribing: a stop does not wait for a broker that
// cannot be reached.
func TestConsumerStopWhileSubscribing(t *testing.T) {
	t.Parallel()
	replica, _ := cqrsync.NewReplica(databasesql.New(cqrsynctesting.OpenSQLite(t), sqldialect.SQLite()), nil)
	_ = replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic"})
	broker := memory.NewBroker(nil)
	pub := broker.Publisher()
	defer pub.Close()
	sub := unreachableSubscriber{entered: make(chan struct{})}
	c, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{Replica: replica,
		Subscriber: sub, Publisher: pub, Queue: "q",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-sub.entered
	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop waited for a broker that cannot be reached")
	}
}

// TestConsumerDeadLetterPublishFailureDoesNotBlock: the dead-letter publish
// of an event of an unregistered model fails (the broker refuses); the event
// goes back to the queue later, on a timer of its own, while the events
// behind it are applied: the second attempt sees them all applied.
func TestConsumerDeadLetterPublishFailureDoesNotBlock(t *testing.T) {
	t.Parallel()
	const good = 20
	var (
		mu        sync.Mutex
		attempts  int
		atSecond  int64 = -1
		consumer  *cqrsync.Consumer
		broker    *memory.Broker
		published = make(chan struct{})
	)
	b := setupConsumer(t, consumerOpts{workers: 1, batch: 50, noStart: true, config: func(cfg *cqrsync.ConsumerConfig) {
		broker = memory.NewBroker(&memory.Config{FailPublish: func(m *transport.Message) error {
			if m.Queue != transport.DeadLetterQueue("djpeer_replica") {
				return nil
			}
			<-published
			mu.Lock()
			defer mu.Unlock()
			attempts++
			if attempts == 2 {
				atSecond = consumer.Stats().Applied
				return nil // the broker is back
			}
			return errors.New("broker refuses")
		}})
		if err := broker.DeclareQueue("djpeer_replica", "djpeer_basic", "other_model"); err != nil {
			t.Fatal(err)
		}
		cfg.Subscriber, cfg.Publisher = broker.Subscriber(), broker.Publisher()
	}})
	consumer = b.consumer
	b.start(t)
	unknown := strings.Replace(saveBody("SAVE", 1, 0, 1, time.Now()), `"cqrs_id":"djpeer_basic"`, `"cqrs_id":"other_model"`, 1)
	msgs := []transport.Message{{CQRSID: "other_model", Body: []byte(unknown)}}
	for i := int64(1); i <= good; i++ {
		msgs = append(msgs, transport.Message{CQRSID: "djpeer_basic", Body: []byte(saveBody("SAVE", i, 0, i, time.Now()))})
	}
	if err := broker.Publisher().Publish(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	close(published)
	waitFor(t, 30*time.Second, func() bool { return consumer.Stats().DeadLettered == 1 }, "the dead letter")
	mu.Lock()
	defer mu.Unlock()
	if attempts != 2 || atSecond != good {
		t.Fatalf("dead-letter attempts %d, %d events applied at the second; want 2 attempts and all %d applied before the second", attempts, atSecond, good)
	}
}

// TestConsumerMaxDelayedIsAtMostHalfThePrefetch: events waiting for a retry
// hold their prefetch slots, so by default they get at most half of the
// window, and a larger MaxDelayed is refused with what to do.
func TestConsumerMaxDelayedIsAtMostHalfThePrefetch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  cqrsync.ConsumerConfig
		want int
	}{
		{cqrsync.ConsumerConfig{}, 500},                            // Prefetch 1001
		{cqrsync.ConsumerConfig{Workers: 8, BatchSize: 500}, 4000}, // Prefetch 8000: 1000 per worker
		{cqrsync.ConsumerConfig{Prefetch: 20}, 10},
		{cqrsync.ConsumerConfig{Prefetch: 1}, 0}, // no room: refused below
	} {
		if got := tc.cfg.WithDefaults().MaxDelayed; got != tc.want {
			t.Errorf("MaxDelayed with Workers %d, BatchSize %d, Prefetch %d defaults to %d, want %d", tc.cfg.Workers, tc.cfg.BatchSize, tc.cfg.Prefetch, got, tc.want)
		}
	}
	_, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{Queue: "q", Prefetch: 20, MaxDelayed: 11})
	if err == nil || !strings.Contains(err.Error(), "MaxDelayed 11 is more than half of Prefetch 20") {
		t.Fatalf("NewConsumer error = %v, want MaxDelayed refused", err)
	}
	// A window of 1 would hold no retry: each would go back at once and a
	// passing failure would use up every retry in milliseconds.
	_, err = cqrsync.NewConsumer(&cqrsync.ConsumerConfig{Queue: "q", Prefetch: 1})
	if err == nil || !strings.Contains(err.Error(), "Prefetch 1 leaves no room") {
		t.Fatalf("NewConsumer error = %v, want Prefetch 1 refused", err)
	}
}

// TestConsumerRetriedBroadcastSyncStaysBroadcast: the replica sends a retry
// to its own queue alone, the route of an operator's one-queue SYNC, which
// overwrites whatever the revision. A broadcast SYNC that failed once and
// comes back after a newer SAVE must still not downgrade the row, and its
// dead letter must keep the mark for a later retry.
func TestConsumerRetriedBroadcastSyncStaysBroadcast(t *testing.T) {
	t.Parallel()
	failed := make(chan struct{})
	var once sync.Once
	var newerSeen atomic.Bool
	model := &cqrsync.ReplicaModel{
		CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: map[string]cqrsync.ValueType{"decimal_field": cqrsync.TypeDecimal},
		OnSave: func(ctx context.Context, ex sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
			if e.Revision == 3 {
				newerSeen.Store(true)
			}
			if e.Signal == cqrsync.SignalSync && !newerSeen.Load() {
				once.Do(func() { close(failed) })
				return errors.New("the SYNC fails until the newer SAVE is in")
			}
			return nil
		},
	}
	b := setupConsumer(t, consumerOpts{workers: 1, batch: 1, model: model, retry: cqrsync.RetryPolicy{
		MaxRetries: 5, Delay: func(int) time.Duration { return 300 * time.Millisecond },
	}})
	now := time.Now()
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 1, 10, now))
	b.publish(t, "djpeer_basic", saveBody("SYNC", 1, 2, 20, now.Add(time.Second)))
	<-failed // the SYNC waits for its retry; a newer SAVE overtakes it
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 3, 30, now.Add(2*time.Second)))
	b.settle(t)
	if rev, v, _ := b.row(t, 1); rev != 3 || v != 30 {
		t.Fatalf("row 1 = revision %d, int_field %d; want 3, 30: the retried broadcast SYNC downgraded it", rev, v)
	}
	if st := b.consumer.Stats(); st.Retried != 1 {
		t.Fatalf("stats = %+v, want one retry", st)
	}
	if strings.Contains(b.logs.String(), "SYNC downgraded") {
		t.Fatalf("a retried broadcast SYNC was taken for a one-queue repair:\n%s", b.logs.String())
	}
}

// TestConsumerCountsOnlyDelayedRedeliveriesAsRetries: an event delivered
// before and returned to the queue by a subscription's Close (a consumer
// stopped, a connection lost) was not retried: on a transport that
// declares DelayedRedelivery, only its NackDelay redeliveries add to its
// retries, so it still gets all MaxRetries retries before it is
// dead-lettered.
func TestConsumerCountsOnlyDelayedRedeliveriesAsRetries(t *testing.T) {
	t.Parallel()
	var nacks atomic.Int64
	b := setupConsumer(t, consumerOpts{
		delayed: true,
		noStart: true,
		retry:   cqrsync.RetryPolicy{MaxRetries: 2},
		config: func(c *cqrsync.ConsumerConfig) {
			c.Subscriber = nackDelayCounter{c.Subscriber, &nacks}
		},
	})
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 0, 666, time.Now()))
	sub := b.broker.Subscriber()
	defer sub.Close()
	for range 2 { // delivered and returned by Close, twice
		s, err := sub.Subscribe(t.Context(), &transport.SubscribeParams{Queue: b.queue, CQRSIDs: []string{"djpeer_basic"}, Prefetch: 1})
		if err != nil {
			t.Fatal(err)
		}
		d := <-s.Deliveries()
		if d.Delays != 0 {
			t.Fatalf("a delivery returned by Close has Delays %d, want 0", d.Delays)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b.start(t)
	dlq := transport.DeadLetterQueue(b.queue)
	waitFor(t, 10*time.Second, func() bool { return b.broker.QueueLen(dlq) == 1 }, "the event to be dead-lettered")
	b.settle(t)
	if n := nacks.Load(); n != 2 {
		t.Fatalf("NackDelay called %d times, want 2: redeliveries after Close are not retries", n)
	}
	b.wantOneDeadLetterRetried(t, 2)
}

// wantOneDeadLetterRetried fails t unless the dead-letter queue holds one
// event, whose body counts retries retries.
func (b *consumerBundle) wantOneDeadLetterRetried(t *testing.T, retries int) {
	t.Helper()
	var bodies []string
	if err := b.broker.BrowseDeadLetters(t.Context(), transport.DeadLetterQueue(b.queue), func(_ context.Context, m *transport.Message) error {
		bodies = append(bodies, string(m.Body))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"retries":%d`, retries); len(bodies) != 1 || !strings.Contains(bodies[0], want) {
		t.Fatalf("dead letters %q, want one with %s", bodies, want)
	}
}

// retryCounter counts OnRetry calls.
type retryCounter struct {
	hook.Nop
	n atomic.Int64
}

func (r *retryCounter) OnRetry(context.Context, hook.Retry) { r.n.Add(1) }

// TestConsumerDropsWaitingRetriesOfALostSubscription: an event waiting in
// memory for its retry when the connection is lost goes back to the queue
// with the subscription and is delivered again; the consumer must not also
// publish the retry it held for the lost subscription, or every waiting
// event is duplicated on every reconnect.
func TestConsumerDropsWaitingRetriesOfALostSubscription(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	retries := &retryCounter{}
	b := setupConsumer(t, consumerOpts{
		workers: 1,
		retry:   cqrsync.RetryPolicy{MaxRetries: 1, Delay: func(int) time.Duration { return time.Minute }},
		config: func(c *cqrsync.ConsumerConfig) {
			c.Hooks = retries
			c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		},
	})
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 0, 666, time.Now()))
	waitFor(t, 10*time.Second, func() bool { return retries.n.Load() == 1 }, "the event to wait for its retry")
	clock.Add(int64(time.Second)) // the lost subscription's retry falls due first
	b.broker.CutConnections()
	waitFor(t, 10*time.Second, func() bool { return retries.n.Load() == 2 }, "the redelivered event to wait for its retry")
	clock.Add(int64(3 * time.Minute)) // both retries are due
	b.publish(t, "djpeer_basic", saveBody("SAVE", 2, 0, 666, time.Now()))
	dlq := transport.DeadLetterQueue(b.queue)
	// Event 2 waits for its retry; event 1's retry is dead-lettered (it has
	// no retries left) once its original is acknowledged.
	waitFor(t, 10*time.Second, func() bool {
		return b.consumer.Stats().Retried >= 1 && b.broker.QueueLen(b.queue) == 1 && b.broker.QueueLen(dlq) >= 1
	}, "event 1 to be retried and dead-lettered")
	if st := b.consumer.Stats(); st.Retried != 1 || b.broker.QueueLen(dlq) != 1 {
		t.Fatalf("Retried %d, %d dead letters; want 1 and 1: the retry held for the lost subscription was sent too", st.Retried, b.broker.QueueLen(dlq))
	}
}

package cqrsync_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// rabbitBundle is a replica consuming a real RabbitMQ queue of its own.
type rabbitBundle struct {
	url, exchange, queue string
	tr                   *rabbitmq.Transport
	replicaDB            *sql.DB
	replica              *cqrsync.Replica
}

func setupRabbit(t *testing.T) *rabbitBundle {
	t.Helper()
	b := &rabbitBundle{url: testenv.AMQPURL(t), exchange: cqrsynctesting.UniqueName("cqrsynctest_x_"), queue: cqrsynctesting.UniqueName("cqrsynctest_q_")}
	b.tr = newRabbitTransport(t, b.url, b.exchange, b.queue)
	var err error
	b.replicaDB = cqrsynctesting.OpenPostgres(t, `CREATE TABLE djpeer_basic (
		id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMPTZ NOT NULL,
		int_field INTEGER NOT NULL, char_field VARCHAR(200) NOT NULL, date_field DATE, datetime_field TIMESTAMPTZ,
		bool_field BOOLEAN NOT NULL, nullable_int INTEGER, nullable_char VARCHAR(200), uuid_field UUID,
		decimal_field NUMERIC(14,4), float_field DOUBLE PRECISION, json_field JSONB, CHECK (int_field <> 666))`)
	b.replica, err = cqrsync.NewReplica(databasesql.New(b.replicaDB, sqldialect.Postgres()), &cqrsync.ReplicaConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic"}); err != nil {
		t.Fatal(err)
	}
	return b
}

// newRabbitTransport returns a transport on the test's own exchange, closed
// when the test ends, when the exchange and queue (with its dead letters)
// are removed.
func newRabbitTransport(t testing.TB, url, exchange, queue string) *rabbitmq.Transport {
	t.Helper()
	tr, err := rabbitmq.New(t.Context(), &rabbitmq.Config{URL: url, Exchange: exchange, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tr.Close()
		// The exchange and queues are this test's own: remove them.
		cqrsynctesting.DeleteRabbitMQ(url, exchange, queue)
	})
	return tr
}

func (b *rabbitBundle) consumer(t *testing.T, retry cqrsync.RetryPolicy) *cqrsync.Consumer {
	t.Helper()
	return runConsumer(t, &cqrsync.ConsumerConfig{
		Replica: b.replica, Subscriber: b.tr, Publisher: b.tr, Queue: b.queue,
		Workers: 2, BatchSize: 50, Retry: retry, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

func (b *rabbitBundle) deadLetters(t *testing.T) []*transport.Message {
	t.Helper()
	var out []*transport.Message
	_, err := b.tr.ScanDeadLetters(t.Context(), transport.DeadLetterQueue(b.queue), func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		out = append(out, m)
		return transport.DeadLetterKeep, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	cqrsynctesting.Eventually(t, timeout, what, cond)
}

// TestRabbitMQEndToEnd: a master's changes reach a PostgreSQL replica
// through the outbox, the relay and a real RabbitMQ, with django-cqrs's
// topology and bodies.
func TestRabbitMQEndToEnd(t *testing.T) {
	t.Parallel()
	b := setupRabbit(t)
	ctx := t.Context()
	c := b.consumer(t, cqrsync.RetryPolicy{})

	masterDB := cqrsynctesting.OpenSQLite(t, vectorTables["djpeer_basic"])
	relay, err := outbox.NewRelay(databasesql.New(masterDB, sqldialect.SQLite()), &outbox.Config{Publisher: b.tr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	master, err := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.SQLite()), &cqrsync.MasterConfig{Notify: relay.Notify})
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: map[string]cqrsync.ValueType{"decimal_field": cqrsync.TypeDecimal}}); err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer relay.Stop()
	const n = 100
	for i := int64(1); i <= n; i++ {
		tx, _ := masterDB.BeginTx(ctx, nil)
		if _, err := tx.Exec(`INSERT INTO djpeer_basic (id, char_field, int_field, decimal_field, json_field, uuid_field, datetime_field)
			VALUES (?, ?, ?, '12.3400', '{"k":[1,2]}', 'ABCDEF01-2345-6789-ABCD-EF0123456789', '2024-03-01 12:00:00+05:30')`, i, fmt.Sprintf("row %d", i), i); err != nil {
			t.Fatal(err)
		}
		if err := master.Create(ctx, tx, "djpeer_basic", i); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := master.Delete(ctx, tx, "djpeer_basic", i-5); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 30*time.Second, "the replica to catch up", func() bool {
		var rows int
		_ = b.replicaDB.QueryRow("SELECT COUNT(*) FROM djpeer_basic").Scan(&rows)
		return rows == n-n/10 && c.Stats().Applied == n+n/10
	})
	var dec, uuid, dt, js string
	if err := b.replicaDB.QueryRow(`SELECT decimal_field::text, uuid_field::text, datetime_field AT TIME ZONE 'UTC', json_field::text FROM djpeer_basic WHERE id = 1`).Scan(&dec, &uuid, &dt, &js); err != nil {
		t.Fatal(err)
	}
	if dec != "12.3400" || uuid != "abcdef01-2345-6789-abcd-ef0123456789" || !strings.HasPrefix(dt, "2024-03-01T06:30:00") || js != `{"k": [1, 2]}` {
		t.Fatalf("replica values: %s %s %s %s", dec, uuid, dt, js)
	}
}

// TestRabbitMQRetriesAndDeadLetters: a failing event goes back to the queue
// through cqrs.<queue>.<cqrs_id> with retries+1, then to the dead-letter
// queue with the reason; a retry waiting in a consumer that is stopped is
// not lost.
func TestRabbitMQRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	b := setupRabbit(t)
	ctx := t.Context()
	// A long delay: the failed event waits, unacknowledged, in the consumer.
	c := b.consumer(t, cqrsync.RetryPolicy{MaxRetries: 2, Delay: func(int) time.Duration { return time.Hour }})
	body := saveBody("SAVE", 1, 0, 666, time.Now()) // violates the CHECK constraint
	if err := b.tr.Publish(ctx, []transport.Message{{CQRSID: "djpeer_basic", Body: []byte(body)}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the first failure", func() bool { return c.Stats().Received >= 1 })
	// Stop while the retry waits: the broker must still hold the event.
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	c2 := b.consumer(t, cqrsync.RetryPolicy{MaxRetries: 2, Delay: func(int) time.Duration { return time.Millisecond }})
	waitUntil(t, 20*time.Second, "the event to reach the dead-letter queue", func() bool { return len(b.deadLetters(t)) == 1 })
	dl := b.deadLetters(t)[0]
	if !strings.Contains(string(dl.Body), `"retries":2`) || !strings.Contains(dl.Headers[cqrsync.HeaderDeadLetterReason], "int_field") {
		t.Fatalf("dead letter %s (reason %q), want retries 2 and the constraint in the reason", dl.Body, dl.Headers[cqrsync.HeaderDeadLetterReason])
	}
	// The first consumer may have sent the first retry before Stop reached
	// it: the two retries are counted by the two consumers together.
	if st, st1 := c2.Stats(), c.Stats(); st.Retried+st1.Retried != 2 || st.DeadLettered != 1 {
		t.Fatalf("consumer stats %+v then %+v, want 2 retries in all and 1 dead letter", st1, st)
	}
	// Retry it after fixing nothing: it fails again and comes back, once.
	n, err := tools.RetryDeadLetters(ctx, b.tr, b.tr, b.queue, transport.DeadLetterQueue(b.queue), nil)
	if err != nil || n != 1 {
		t.Fatalf("RetryDeadLetters = %d, %v; want 1", n, err)
	}
	waitUntil(t, 20*time.Second, "the retried event to be dead-lettered again", func() bool {
		return c2.Stats().DeadLettered == 2 && len(b.deadLetters(t)) == 1
	})
}

// TestRabbitMQUnknownCQRSIDIsDeadLetteredOnce: the queue is bound to a
// cqrs_id this replica does not register (as django-cqrs's
// cqrs_dead_letters binds it to every model of a project). Such an event
// must leave the queue at once, dead-lettered with its reason, even though
// nothing binds the dead-letter queue to that cqrs_id; and the events
// around it are applied.
func TestRabbitMQUnknownCQRSIDIsDeadLetteredOnce(t *testing.T) {
	t.Parallel()
	b := setupRabbit(t)
	ctx := t.Context()
	c := b.consumer(t, cqrsync.RetryPolicy{})
	conn, err := amqp.Dial(b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(b.queue, "other_model", b.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()

	const good = 20
	unknown := strings.Replace(saveBody("SAVE", 1, 0, 1, time.Now()), `"cqrs_id":"djpeer_basic"`, `"cqrs_id":"other_model"`, 1)
	var msgs []transport.Message
	for i := int64(1); i <= good; i++ {
		msgs = append(msgs, transport.Message{CQRSID: "djpeer_basic", Body: []byte(saveBody("SAVE", i, 0, i, time.Now()))})
		if i == good/2 {
			msgs = append(msgs, transport.Message{CQRSID: "other_model", Body: []byte(unknown)})
		}
	}
	if err := b.tr.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the good events to be applied and the unknown one dead-lettered", func() bool {
		st := c.Stats()
		return st.Applied == good && st.DeadLettered == 1
	})
	dls := b.deadLetters(t)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	if string(dl.Body) != unknown || dl.CQRSID != "other_model" || !strings.Contains(dl.Headers[cqrsync.HeaderDeadLetterReason], "not registered") {
		t.Fatalf("dead letter %s (cqrs_id %q, reason %q), want the event's body, its cqrs_id and the reason", dl.Body, dl.CQRSID, dl.Headers[cqrsync.HeaderDeadLetterReason])
	}
	// Received exactly once: it did not come back to the queue.
	if st := c.Stats(); st.Received != good+1 {
		t.Fatalf("stats %+v: received %d deliveries, want %d (the unknown event once)", st, st.Received, good+1)
	}
	// dead-letters dump --format jsonl shows the reason.
	var out strings.Builder
	if n, err := tools.DumpDeadLettersJSONL(ctx, b.tr, transport.DeadLetterQueue(b.queue), &tools.DeadLetterFilter{CQRSIDs: []string{"other_model"}}, &out); err != nil || n != 1 {
		t.Fatalf("DumpDeadLettersJSONL = %d, %v; want 1", n, err)
	}
	var line tools.DeadLetterLine
	if err := json.Unmarshal([]byte(out.String()), &line); err != nil {
		t.Fatalf("dump line %q: %v", out.String(), err)
	}
	if line.CQRSID != "other_model" || line.Reason == nil || !strings.Contains(*line.Reason, "not registered") || line.DeadLetteredAt == nil || string(line.Body) != unknown {
		t.Fatalf("dump line %s, want the cqrs_id, the reason, the time and the body", out.String())
	}
}

// TestRabbitMQFailingBurstLeavesRoomForGoodEvents: more failing events than
// the prefetch window arrive, with good events behind them. The failing
// ones wait for their retry (an hour) unacknowledged, but they may hold only
// part of the window, so the good events arrive and are applied while the
// failing ones wait; the overflow is requeued at once with retries+1.
func TestRabbitMQFailingBurstLeavesRoomForGoodEvents(t *testing.T) {
	t.Parallel()
	b := setupRabbit(t)
	ctx := t.Context()
	const prefetch, failing, good = 20, 30, 5
	c := runConsumer(t, &cqrsync.ConsumerConfig{
		Replica: b.replica, Subscriber: b.tr, Publisher: b.tr, Queue: b.queue,
		Workers: 1, BatchSize: 5, Prefetch: prefetch, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Retry: cqrsync.RetryPolicy{MaxRetries: 1000, Delay: func(int) time.Duration { return time.Hour }},
	})
	var msgs []transport.Message
	for i := int64(1); i <= failing+good; i++ {
		v := i
		if i <= failing {
			v = 666 // violates the CHECK constraint
		}
		msgs = append(msgs, transport.Message{CQRSID: "djpeer_basic", Body: []byte(saveBody("SAVE", i, 0, v, time.Now()))})
	}
	if err := b.tr.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the good events behind the failing burst to be applied", func() bool { return c.Stats().Applied == good })
	if st := c.Stats(); st.Retried == 0 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v: want failing events requeued to make room, none dead-lettered", st)
	}
}

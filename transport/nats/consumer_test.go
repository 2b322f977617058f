package nats_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport"
)

// TestConsumerRetriesAndDeadLetters: cqrsync's consumer on NATS retries a
// failing event with delays the server keeps (NackDelay: nothing waits in
// the consumer), counts them from the deliveries' Delays, then moves the
// event to the dead-letter stream with its reason; the events around it
// are applied; the dead-letter tools retry it back into the queue.
func TestConsumerRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := open(t, b.config(b.url))
	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, val INTEGER NOT NULL CHECK (val <> 666),
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`)
	replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), &cqrsync.ReplicaConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "item", Table: "item"}); err != nil {
		t.Fatal(err)
	}
	const queue = "items"
	c, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: tr, Publisher: tr, Queue: queue, Workers: 2, Logger: quiet,
		Retry: cqrsync.RetryPolicy{MaxRetries: 2, Delay: func(int) time.Duration { return 50 * time.Millisecond }},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	body := func(id, val int) []byte {
		return fmt.Appendf(nil, `{"signal_type":"SAVE","cqrs_id":"item","instance_data":{"id":%d,"val":%d,"cqrs_revision":0,"cqrs_updated":"2024-01-01T00:00:00.000000+00:00"},`+
			`"previous_data":null,"instance_pk":%d,"correlation_id":null,"retries":0,"expires":null,"meta":{}}`, id, val, id)
	}
	// The consumer subscribes in the background; until it did, the queue
	// does not exist and messages for it are dropped.
	cqrsynctesting.Eventually(t, 10*time.Second, "the queue to exist", func() bool {
		return tr.Publish(ctx, []transport.Message{{CQRSID: "item", Queue: queue, Body: body(100, 1)}}) == nil && c.Stats().Applied == 1
	})
	if err := tr.Publish(ctx, []transport.Message{
		{CQRSID: "item", Body: body(1, 1)}, {CQRSID: "item", Body: body(2, 666)}, {CQRSID: "item", Body: body(3, 3)},
	}); err != nil {
		t.Fatal(err)
	}
	dlq := transport.DeadLetterQueue(queue)
	deadLetters := func() []*transport.Message {
		var out []*transport.Message
		if err := tr.BrowseDeadLetters(ctx, dlq, func(_ context.Context, m *transport.Message) error {
			out = append(out, m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	cqrsynctesting.Eventually(t, 20*time.Second, "the failing event to be dead-lettered", func() bool { return len(deadLetters()) == 1 })
	dl := deadLetters()[0]
	if !strings.Contains(dl.Headers[cqrsync.HeaderDeadLetterReason], "CHECK") || !strings.Contains(string(dl.Body), `"instance_pk":2`) {
		t.Fatalf("dead letter %s with reason %q, want event 2 and the CHECK constraint", dl.Body, dl.Headers[cqrsync.HeaderDeadLetterReason])
	}
	if st := c.Stats(); st.Retried != 2 || st.DeadLettered != 1 || st.Applied != 3 {
		t.Fatalf("stats %+v, want 3 applied, 2 retries, 1 dead letter", st)
	}

	n, err := tools.RetryDeadLetters(ctx, tr, tr, queue, dlq, nil)
	if err != nil || n != 1 {
		t.Fatalf("RetryDeadLetters = %d, %v; want 1", n, err)
	}
	cqrsynctesting.Eventually(t, 20*time.Second, "the retried event to be dead-lettered again", func() bool {
		return c.Stats().DeadLettered == 2 && len(deadLetters()) == 1
	})
}

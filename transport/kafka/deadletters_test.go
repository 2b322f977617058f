package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport"
)

// TestConsumerRetriesAndDeadLetters runs a cqrsync.Consumer on Kafka whose
// replica table is missing: each event is retried through the queue's topic
// with broker-kept delays, then dead-lettered; once the table exists,
// RetryDeadLetters sends the dead letters back, the consumer applies them,
// and the dead-letter topic shows none (tombstoned).
func TestConsumerRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t)
	tr := c.open(t, nil)
	db := cqrsynctesting.OpenSQLite(t)

	replica := itemReplica(t, db)
	const retries = 2
	cons := startConsumer(t, &cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: tr, Publisher: tr, Queue: "billing", Logger: quiet,
		Retry: cqrsync.RetryPolicy{MaxRetries: retries, Delay: func(int) time.Duration { return 50 * time.Millisecond }},
	})

	const n = 5
	msgs := make([]transport.Message, n)
	for i := range msgs {
		body := fmt.Appendf(nil, `{"signal_type":"SAVE","cqrs_id":"item","instance_data":{"id":%d,"name":"x","val":%d,"cqrs_revision":1,"cqrs_updated":"2026-01-01T00:00:00.000000+00:00"},"instance_pk":%d,"previous_data":null,"correlation_id":null,"retries":0,"expires":null}`, i+1, i, i+1)
		msgs[i] = transport.Message{CQRSID: "item", Body: body}
	}
	if err := tr.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	dlq := transport.DeadLetterQueue("billing")
	cqrsynctesting.Eventually(t, 20*time.Second, "every event to be dead-lettered", func() bool {
		return cons.Stats().DeadLettered == n
	})
	if st := cons.Stats(); st.Retried != n*retries {
		t.Errorf("retried %d times, want %d (%d events × %d retries through the queue topic)", st.Retried, n*retries, n, retries)
	}
	var dump bytes.Buffer
	if got, err := tools.DumpDeadLetters(ctx, tr, dlq, nil, &dump); err != nil || got != n {
		t.Fatalf("DumpDeadLetters: %d, %v; want %d", got, err, n)
	}
	if !strings.Contains(dump.String(), `"instance_pk":3`) {
		t.Fatalf("dump lacks event 3:\n%s", dump.String())
	}

	if _, err := db.ExecContext(ctx, `CREATE TABLE item_copy (id INTEGER PRIMARY KEY, name TEXT NOT NULL, val INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if got, err := tools.RetryDeadLetters(ctx, tr, tr, "billing", dlq, nil); err != nil || got != n {
		t.Fatalf("RetryDeadLetters: %d, %v; want %d", got, err, n)
	}
	cqrsynctesting.Eventually(t, 20*time.Second, "the retried events to be applied", func() bool {
		var rows int
		return db.QueryRowContext(ctx, "SELECT COUNT(*) FROM item_copy").Scan(&rows) == nil && rows == n
	})
	var left int
	if err := tr.BrowseDeadLetters(ctx, dlq, func(_ context.Context, m *transport.Message) error { left++; return nil }); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d dead letters left after the retry", left)
	}
}

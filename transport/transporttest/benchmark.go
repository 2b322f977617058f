package transporttest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// Benchmark measures the throughput of the transport: one publisher
// publishes b.N messages of 512 bytes in batches while one subscription
// (default prefetch) receives and acks them in groups of 64. It reports
// msgs/s, from the first publish to the last delivery. newTransport is the
// same function [Run] takes.
func Benchmark(b *testing.B, newTransport func(tb testing.TB) Transport) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("PublishConsume/batch=%d", batch), func(b *testing.B) {
			benchPublishConsume(b, newTransport, batch)
		})
	}
}

func benchPublishConsume(b *testing.B, newTransport func(tb testing.TB) Transport, batch int) {
	tr := newTransport(b)
	ctx := b.Context()
	id := NewTestID()
	p := params(id+"_q", id+"_m")
	b.Cleanup(func() {
		_ = tr.Publisher.Close()
		_ = tr.Subscriber.Close()
		if tr.DeleteQueue != nil {
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, q := range []string{p.Queue, transport.DeadLetterQueue(p.Queue)} {
				if err := tr.DeleteQueue(dctx, q); err != nil {
					b.Logf("DeleteQueue(%q): %v", q, err)
				}
			}
		}
	})
	sub, err := tr.Subscriber.Subscribe(ctx, p)
	if err != nil {
		b.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()

	body := []byte(`{"signal_type":"SAVE","cqrs_id":"` + p.CQRSIDs[0] + `","instance_data":{"name":"` +
		strings.Repeat("x", 512) + `"}}`)[:512]
	msgs := make([]transport.Message, batch)
	for i := range msgs {
		msgs[i] = transport.Message{CQRSID: p.CQRSIDs[0], Body: body}
	}

	n := b.N
	consumed := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() { consumed <- consume(ctx, sub, n) }()
	for sent := 0; sent < n; {
		k := min(batch, n-sent)
		if err := tr.Publisher.Publish(ctx, msgs[:k]); err != nil {
			b.Fatalf("Publish: %v", err)
		}
		sent += k
	}
	if err := <-consumed; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
}

// consume receives n deliveries, acking them 64 at a time.
func consume(ctx context.Context, sub transport.Subscription, n int) error {
	const group = 64
	ids := make([]uint64, 0, group)
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for got := 0; got < n; got++ {
		select {
		case d, ok := <-sub.Deliveries():
			if !ok {
				return fmt.Errorf("deliveries closed after %d of %d messages: %v", got, n, sub.Err())
			}
			ids = append(ids, d.ID)
		case <-timeout.C:
			return fmt.Errorf("timed out after 5m with %d of %d messages received", got, n)
		}
		if len(ids) == group || got == n-1 {
			if err := sub.Ack(ctx, ids...); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			ids = ids[:0]
		}
	}
	return nil
}

package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/transport"
)

// TestKilledMidBatch kills a consumer process that holds a batch, part of
// it acknowledged: the replacement gets every unacknowledged message once
// (nothing lost) and none of the acknowledged ones (nothing resurrected).
func TestKilledMidBatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t)
	pub := c.open(t, nil)
	params := &transport.SubscribeParams{Queue: "billing", CQRSIDs: []string{"account"}, Prefetch: 500}

	trA, procA := c.openProcess(t)
	subA, err := trA.Subscribe(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	const n, acked = 120, 50
	msgs := make([]transport.Message, n)
	for i := range msgs {
		msgs[i] = transport.Message{CQRSID: "account", Body: fmt.Appendf(nil, `{"cqrs_id":"account","instance_pk":%d}`, i)}
	}
	if err := pub.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	held := receive(t, subA, n)
	// Each partition's records arrive in offset order, so the first
	// deliveries are a prefix of every partition: all of them can commit.
	for _, d := range held[:acked] {
		if err := subA.Ack(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(newPlainClient(t, c))
	cqrsynctesting.Eventually(t, 10*time.Second, "the acknowledged offsets to be committed", func() bool {
		offs, err := adm.FetchOffsets(ctx, "cqrs.billing")
		if err != nil {
			return false
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == "cqrs" {
				sum += o.At
			}
		})
		return sum == acked
	})
	procA.kill() // dies holding n-acked unacknowledged deliveries

	trB, _ := c.openProcess(t)
	subB, err := trB.Subscribe(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, d := range held[acked:] {
		want[string(d.Body)] = true
	}
	got := receive(t, subB, n-acked)
	for _, d := range got {
		if !want[string(d.Body)] {
			t.Errorf("%s delivered to the replacement: acknowledged before the crash, or twice", d.Body)
		}
		delete(want, string(d.Body))
		if err := subB.Ack(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	if len(want) > 0 {
		t.Fatalf("lost: %d messages never reached the replacement", len(want))
	}
	expectQuiet(t, subB, 300*time.Millisecond)
}

func newPlainClient(tb testing.TB, c *cluster) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// receive waits for n deliveries on s.
func receive(tb testing.TB, s transport.Subscription, n int) []transport.Delivery {
	tb.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	out := make([]transport.Delivery, 0, n)
	for len(out) < n {
		select {
		case d, ok := <-s.Deliveries():
			if !ok {
				tb.Fatalf("deliveries closed after %d of %d", len(out), n)
			}
			out = append(out, d)
		case <-timeout.C:
			tb.Fatalf("timed out with %d of %d deliveries", len(out), n)
		}
	}
	return out
}

// expectQuiet fails if anything arrives on s within d.
func expectQuiet(tb testing.TB, s transport.Subscription, d time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	select {
	case m, ok := <-s.Deliveries():
		if ok {
			tb.Fatalf("unexpected delivery %s", m.Body)
		}
	case <-ctx.Done():
	}
}

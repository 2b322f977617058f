package nats_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

// TestKilledMidBatch: a subscriber process dies holding a batch, some of
// it acked: its connection is cut for good, so it cannot nack, release
// its lease or say goodbye. A subscription of another process on the same
// queue takes the partition over once the lease expires and receives
// exactly what was not acked: nothing is lost, and no acked message comes
// back.
func TestKilledMidBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	pub := open(t, b.config(b.url))
	proxy, u := b.proxied(t)
	doomed := open(t, b.config(u))
	survivor := open(t, b.config(b.url))

	id := transporttest.NewTestID()
	p := &transport.SubscribeParams{Queue: id + "_q", CQRSIDs: []string{id}, Prefetch: 40}
	s1, err := doomed.Subscribe(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	msgs := make([]transport.Message, n)
	for i := range msgs {
		msgs[i] = transport.Message{CQRSID: id, Body: fmt.Appendf(nil, "m%03d", i)}
	}
	if err := pub.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for i := range 40 {
		d := recv(t, s1)
		if i < 25 {
			if err := s1.Ack(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			acked[string(d.Body)] = true
		}
	}
	// The acks went out; now the crash.
	if err := doomed.Conn().FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()

	s2, err := survivor.Subscribe(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for len(seen) < n-len(acked) {
		d := recv(t, s2)
		body := string(d.Body)
		if acked[body] {
			t.Fatalf("%s was acked by the killed subscriber, yet delivered again", body)
		}
		seen[body]++
		if err := s2.Ack(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		body := fmt.Sprintf("m%03d", i)
		if !acked[body] && seen[body] == 0 {
			t.Errorf("%s lost", body)
		}
	}
	_ = doomed.Close() // after the test's checks: it cannot reach the server
}

// recv waits for one delivery.
func recv(t *testing.T, s transport.Subscription) transport.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	select {
	case d, ok := <-s.Deliveries():
		if !ok {
			t.Fatalf("deliveries closed: %v", s.Err())
		}
		return d
	case <-ctx.Done():
		t.Fatal("no delivery within 30s")
	}
	return transport.Delivery{}
}

package transporttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// consumer receives from a subscription that may be cut, subscribing again
// whenever it ends with an error, and records what it saw.
type consumer struct {
	b      *bundle
	p      *transport.SubscribeParams
	s      transport.Subscription
	seen   map[string]int
	dups   int
	resubs int
}

// handle records and acks d. An ack that fails (the connection was cut) is
// logged: the message comes back, which the suite allows.
func (c *consumer) handle(t *testing.T, d transport.Delivery) {
	body := string(d.Body)
	c.seen[body]++
	if c.seen[body] > 1 {
		c.dups++
	}
	if err := c.s.Ack(c.b.ctx, d.ID); err != nil {
		t.Logf("Ack(%s) failed, it will be redelivered: %v", body, err)
	}
}

// ended handles the end of the subscription: an error means the connection
// was cut, and the consumer subscribes again until it succeeds; a nil error
// is a bug, since nobody closed it.
func (c *consumer) ended(t *testing.T) {
	t.Helper()
	err := c.s.Err()
	if err == nil {
		t.Fatal("subscription ended with a nil Err, but it was neither closed nor cancelled")
	}
	t.Logf("subscription ended: %v; subscribing again", err)
	_ = c.s.Close()
	deadline := time.Now().Add(c.b.f.Timeout)
	for {
		s, err := c.b.trySubscribe(t, c.b.ctx, c.p)
		if err == nil {
			c.s = s
			c.resubs++
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot subscribe again within %v: %v", c.b.f.Timeout, err)
		}
		t.Logf("Subscribe: %v; retrying", err)
		pollPause(c.b.ctx)
	}
}

// publishRetrying publishes m until the transport accepts it, as the outbox
// relay does, and returns how many attempts failed.
func (b *bundle) publishRetrying(m transport.Message) (failures int, err error) {
	deadline := time.Now().Add(b.f.Timeout)
	for {
		err := b.tryPublish([]transport.Message{m})
		if err == nil {
			return failures, nil
		}
		failures++
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			return failures, fmt.Errorf("publish %s: still failing after %v: %w", short(m.Body), b.f.Timeout, err)
		}
		pollPause(b.ctx)
	}
}

// testCutConnections: publishers and subscriptions survive their connections
// being cut mid-stream (recovering by themselves, or reporting so that the
// caller can retry and resubscribe), and every message published arrives at
// least once.
func testCutConnections(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	p := params(q, id)
	p.Prefetch = 20
	c := &consumer{b: b, p: p, s: b.subscribe(t, p), seen: map[string]int{}}

	const n = 200
	halfway := make(chan struct{})
	type result struct {
		failures int
		err      error
	}
	published := make(chan result, 1)
	go func() {
		var r result
		defer func() { published <- r }()
		for i := range n {
			if i == n/2 {
				close(halfway)
			}
			f, err := b.publishRetrying(msg(id, fmt.Sprintf("cut-%03d", i)))
			r.failures += f
			if err != nil {
				r.err = err
				return
			}
		}
	}()

	timeout := time.NewTimer(2 * b.f.Timeout)
	defer timeout.Stop()
	cuts := 0
	var pub *result
	for len(c.seen) < n || halfway != nil || pub == nil {
		select {
		case d, ok := <-c.s.Deliveries():
			if !ok {
				c.ended(t)
				continue
			}
			c.handle(t, d)
		case <-halfway:
			halfway = nil
			b.tr.CutConnections(t)
			cuts++
		case r := <-published:
			pub = &r
			if r.err != nil {
				t.Fatalf("publisher: %v", r.err)
			}
		case <-timeout.C:
			var missing []int
			for i := range n {
				if c.seen[fmt.Sprintf("cut-%03d", i)] == 0 {
					missing = append(missing, i)
				}
			}
			t.Fatalf("timed out: %d of %d messages received; missing %v", len(c.seen), n, missing)
		}
	}

	// Cut an idle subscription: it must notice, or recover, and a message
	// published afterwards must arrive.
	b.tr.CutConnections(t)
	cuts++
	if _, err := b.publishRetrying(msg(id, "after-idle-cut")); err != nil {
		t.Fatal(err)
	}
	timeout.Reset(b.f.Timeout)
	for c.seen["after-idle-cut"] == 0 {
		select {
		case d, ok := <-c.s.Deliveries():
			if !ok {
				c.ended(t)
				continue
			}
			c.handle(t, d)
		case <-timeout.C:
			t.Fatalf("timed out waiting for the message published after an idle cut")
		}
	}
	t.Logf("%d cuts: %d messages, %d duplicate deliveries, %d resubscriptions, %d failed publish attempts",
		cuts, n+1, c.dups, c.resubs, pub.failures)
}

// pollPause is the pause between attempts while polling for a condition
// that has no signal to wait on (a broker coming back).
func pollPause(ctx context.Context) {
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

package transporttest

import (
	"errors"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// inspector returns the transport's [transport.Inspector]: its Subscriber,
// Publisher or DeadLetters, the first that implements it; nil when none does.
func (b *bundle) inspector() transport.Inspector {
	for _, v := range []any{b.tr.Subscriber, b.tr.Publisher, b.tr.DeadLetters} {
		if in, ok := v.(transport.Inspector); ok {
			return in
		}
	}
	return nil
}

func needInspector(b *bundle) string {
	if b.inspector() == nil {
		return "the transport implements no transport.Inspector (optional)"
	}
	if !b.f.Durable {
		return "the transport does not declare Capabilities.Durable, which the Inspector test needs to fill a queue"
	}
	return ""
}

// testInspector: Ping answers, an unknown queue is ErrQueueNotFound, and
// QueueDepth counts the messages waiting in a queue nobody consumes.
func testInspector(t *testing.T, b *bundle) {
	in := b.inspector()
	if err := in.Ping(b.ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if _, err := in.QueueDepth(b.ctx, b.name("never_declared")); !errors.Is(err, transport.ErrQueueNotFound) {
		t.Fatalf("QueueDepth of an undeclared queue: %v, want an error wrapping transport.ErrQueueNotFound", err)
	}
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b.expectClosed(t, s)
	if n, err := in.QueueDepth(b.ctx, q); err != nil || n != 0 {
		t.Fatalf("QueueDepth of an empty queue = %d, %v; want 0, nil", n, err)
	}
	b.publish(t, msg(id, "one"), msg(id, "two"), msg(id, "three"))
	deadline := time.Now().Add(b.f.Timeout)
	for {
		n, err := in.QueueDepth(b.ctx, q)
		if err != nil {
			t.Fatalf("QueueDepth: %v", err)
		}
		if n == 3 {
			break
		}
		if n > 3 || time.Now().After(deadline) {
			t.Fatalf("QueueDepth = %d after 3 confirmed publishes, want 3", n)
		}
		// A broker may count a confirmed message a moment later: look again
		// on the next round trip.
	}
	s2 := b.subscribe(t, params(q, id))
	b.ack(t, s2, b.receive(t, s2, 3)...)
}

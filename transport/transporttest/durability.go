package transporttest

import (
	"fmt"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// testDurable: messages published while no subscription is open wait in the
// queue the last Subscribe declared.
func testDurable(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s1 := b.subscribe(t, params(q, id))
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b.expectClosed(t, s1)

	want := make([]string, 5)
	msgs := make([]transport.Message, len(want))
	for i := range want {
		want[i] = fmt.Sprintf("while-away-%d", i)
		msgs[i] = msg(id, want[i])
	}
	b.publish(t, msgs[:2]...)
	b.publish(t, direct(q, id, want[2]))
	b.publish(t, msgs[3:]...)

	s2 := b.subscribe(t, params(q, id))
	got := b.receive(t, s2, len(want))
	b.checkOrderOrSet(t, "kept messages", bodyStrings(got), want)
	for _, d := range got {
		if d.Redelivered {
			t.Errorf("%s marked Redelivered, it was never delivered", short(d.Body))
		}
	}
	b.ack(t, s2, got...)
}

// expiration is the TTL the Expiration test gives a message: long enough for
// a real broker to enqueue it before it expires, short enough not to slow
// the suite.
const expiration = 100 * time.Millisecond

// testExpiration: a message that outlives its Expiration in the queue is
// never delivered; one that does not, is.
func testExpiration(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s1 := b.subscribe(t, params(q, id))
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b.expectClosed(t, s1)

	expiring := msg(id, "expiring")
	expiring.Expiration = expiration
	kept := msg(id, "kept")
	kept.Expiration = time.Hour
	b.publish(t, expiring, kept, msg(id, "marker"))
	b.advance(3 * expiration)

	s2 := b.subscribe(t, params(q, id))
	got := b.receiveUntil(t, s2, "marker")
	b.checkOrderOrSet(t, "after expiration", bodyStrings(got), []string{"kept", "marker"})
	if !b.f.PerQueueOrder {
		b.expectQuiet(t, s2)
	}
	b.ack(t, s2, got...)
}

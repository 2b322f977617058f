package transporttest

import (
	"context"
	"testing"

	"github.com/cqrsync/cqrsync/transport"
)

// testPublisherClose: Publish after Close fails with ErrClosed.
func testPublisherClose(t *testing.T, b *bundle) {
	if err := b.tr.Publisher.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := b.tryPublish([]transport.Message{msg(b.name("m"), "after-close")})
	if !isClosed(err) {
		t.Fatalf("Publish after Close = %v, want an error wrapping transport.ErrClosed", err)
	}
}

// testSubscriberClose: closing the subscriber ends its subscriptions and
// makes Subscribe fail with ErrClosed.
func testSubscriberClose(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))
	if err := b.tr.Subscriber.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b.expectClosed(t, s)
	_, err := b.tr.Subscriber.Subscribe(b.ctx, params(q, id))
	if !isClosed(err) {
		t.Fatalf("Subscribe after Close = %v, want an error wrapping transport.ErrClosed", err)
	}
}

// testSubscribeValidates: Subscribe rejects parameters that
// SubscribeParams.Validate rejects, before touching the broker.
func testSubscribeValidates(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	cases := []struct {
		name string
		p    *transport.SubscribeParams
	}{
		{"empty queue", params("", id)},
		{"no CQRS IDs", params(q)},
		{"dot in queue", params(q+".x", id)},
		{"star in CQRS ID", params(q, id+"*")},
		{"hash in dead-letter queue", &transport.SubscribeParams{Queue: q, CQRSIDs: []string{id}, DeadLetterQueue: "dead#" + q}},
	}
	for _, tc := range cases {
		if tc.p.Validate() == nil {
			t.Fatalf("%s: SubscribeParams.Validate accepts %+v; the case is wrong", tc.name, tc.p)
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.f.Timeout)
		s, err := b.tr.Subscriber.Subscribe(ctx, tc.p)
		cancel()
		if err == nil {
			_ = s.Close()
			t.Errorf("%s: Subscribe(%+v) succeeded, want a validation error", tc.name, tc.p)
			continue
		}
		if s != nil {
			t.Errorf("%s: Subscribe returned a subscription with error %v", tc.name, err)
		}
	}
}

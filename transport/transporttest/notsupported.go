package transporttest

import (
	"context"
	"errors"
	"testing"

	"github.com/cqrsync/cqrsync/transport"
)

// testNotSupported: every operation of a capability the transport does not
// declare returns an error wrapping [transport.ErrNotSupported] and changes
// nothing, so that callers may trust the declaration.
func testNotSupported(t *testing.T, b *bundle) {
	c := b.f.Capabilities
	if c.NackRequeue && c.DelayedRedelivery && (c.DeadLetterRemove || b.tr.DeadLetters == nil) && (c.DeadLetterBrowse || b.tr.DeadLetters == nil) {
		t.Skip("the transport declares every capability that has an operation")
	}
	id, q := b.name("m"), b.name("q")
	dlq := transport.DeadLetterQueue(q)
	s := b.subscribe(t, params(q, id))
	ctx, cancel := context.WithTimeout(b.ctx, b.f.Timeout)
	defer cancel()
	notSupported := func(capability, op string, err error) {
		t.Helper()
		if !errors.Is(err, transport.ErrNotSupported) {
			t.Errorf("the transport does not declare Capabilities.%s, but %s returned %v, not an error wrapping ErrNotSupported", capability, op, err)
		}
	}

	if !c.NackRequeue {
		b.publish(t, msg(id, "kept"))
		d := b.receiveOne(t, s)
		notSupported("NackRequeue", "Nack(requeue)", s.Nack(ctx, true, d.ID))
		// The delivery was not settled by the refused nack: ack it.
		if err := s.Ack(ctx, d.ID); err != nil {
			t.Errorf("Ack after a refused Nack(requeue): %v; the refused nack must settle nothing", err)
		}
	}
	if !c.DelayedRedelivery {
		b.publish(t, msg(id, "not delayed"))
		d := b.receiveOne(t, s)
		notSupported("DelayedRedelivery", "NackDelay", s.NackDelay(ctx, b.f.QuietPeriod, d.ID))
		if err := s.Ack(ctx, d.ID); err != nil {
			t.Errorf("Ack after a refused NackDelay: %v; the refused nack must settle nothing", err)
		}
	}
	dl := b.tr.DeadLetters
	if dl == nil {
		return
	}
	if !c.DeadLetterBrowse {
		notSupported("DeadLetterBrowse", "BrowseDeadLetters", dl.BrowseDeadLetters(ctx, dlq, func(context.Context, *transport.Message) error { return nil }))
	}
	if !c.DeadLetterRemove {
		b.publish(t, direct(dlq, id, "dead"))
		_, err := dl.ScanDeadLetters(ctx, dlq, func(context.Context, *transport.Message) (transport.DeadLetterAction, error) {
			return transport.DeadLetterRemove, nil
		})
		notSupported("DeadLetterRemove", "ScanDeadLetters", err)
		_, err = dl.PurgeDeadLetters(ctx, dlq)
		notSupported("DeadLetterRemove", "PurgeDeadLetters", err)
		if c.DeadLetterBrowse {
			if got := messageBodies(b.browse(t, dlq)); len(got) != 1 || got[0] != "dead" {
				t.Errorf("after refused removals the dead-letter queue holds %q, want [dead]", got)
			}
		}
	}
}

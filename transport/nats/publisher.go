package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrsync/cqrsync/transport"
)

// publishWindow bounds the publish acknowledgements one Publish call waits
// for at once (the client allows 4096 in flight per connection).
const publishWindow = 1000

// Publish sends msgs to the exchange's streams and returns nil once
// JetStream has stored every one of them (a publish acknowledgement per
// message, up to 1,000 in flight at once). A broadcast goes to
// "<exchange>.m.<partition>.<cqrs_id>"; a message with Queue set to
// "...<cqrs_id>.<queue>" when Queue is a replica queue, or to the
// dead-letter stream when Queue is a dead-letter queue (as the queue
// registry says). A message for a CQRS ID no queue subscribes to, or for a
// queue that was never subscribed, reaches no queue and is dropped silently
// (Capabilities.ReportsUnroutable is false), as django-cqrs drops it.
//
// When it fails, the *transport.PublishError lists the messages JetStream
// did not confirm; publish them again. Publish keeps nothing of msgs.
func (t *Transport) Publish(ctx context.Context, msgs []transport.Message) error {
	if t.isClosed() {
		return fmt.Errorf("nats: publish: %w", transport.ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	now := time.Now()
	type pending struct {
		i int
		f jetstream.PubAckFuture
	}
	inflight := make([]pending, 0, min(len(msgs), publishWindow))
	var failed []int
	var firstErr error
	fail := func(i int, err error) {
		failed = append(failed, i)
		if firstErr == nil {
			firstErr = err
		}
	}
	wait := func(ps []pending) {
		for _, p := range ps {
			select {
			case <-p.f.Ok():
			case err := <-p.f.Err():
				fail(p.i, err)
			case <-ctx.Done():
				fail(p.i, ctx.Err())
			}
		}
	}
	for i := range msgs {
		if len(inflight) == publishWindow {
			wait(inflight)
			inflight = inflight[:0]
		}
		m := &msgs[i]
		subject, err := t.subject(ctx, m)
		if err != nil {
			fail(i, err)
			continue
		}
		if subject == "" {
			if m.IntoQueue {
				// The contract: a message put straight into a missing queue
				// fails, so the caller keeps the event it was moving.
				fail(i, fmt.Errorf("queue %q does not exist: declare it by subscribing to it", m.Queue))
			}
			continue // unroutable: dropped
		}
		nm := &natsgo.Msg{Subject: subject, Header: outHeaders(m, now), Data: m.Body}
		f, err := t.js.PublishMsgAsync(nm)
		if err != nil {
			fail(i, err)
			continue
		}
		inflight = append(inflight, pending{i, f})
	}
	wait(inflight)
	if failed == nil {
		return nil
	}
	if t.isClosed() && !errors.Is(firstErr, transport.ErrClosed) {
		firstErr = fmt.Errorf("%w: %w", transport.ErrClosed, firstErr)
	}
	return &transport.PublishError{Failed: failed, Err: fmt.Errorf("nats: %w", firstErr)}
}

// subject returns where m goes, or "" when it reaches no queue.
func (t *Transport) subject(ctx context.Context, m *transport.Message) (string, error) {
	c := t.cfg
	if m.Queue == "" {
		return eventSubject(c.Exchange, c.partition(m), m.CQRSID, ""), nil
	}
	kind, err := t.queueKind(ctx, m.Queue)
	switch {
	case err != nil:
		return "", err
	case kind == kindReplica:
		return eventSubject(c.Exchange, c.partition(m), m.CQRSID, m.Queue), nil
	case kind == kindDead:
		return deadSubject(c.Exchange, m.Queue, m.CQRSID), nil
	}
	return "", nil
}

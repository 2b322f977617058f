package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrsync/cqrsync/transport"
)

// BrowseDeadLetters implements [transport.DeadLetterBrowser]: it is
// ScanDeadLetters keeping every message. Browsing the dead-letter stream
// holds nothing: a dead letter is a stored message, not a delivery.
func (t *Transport) BrowseDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *transport.Message) error) error {
	_, err := t.ScanDeadLetters(ctx, dlq, transport.KeepAll(fn))
	return err
}

// ScanDeadLetters calls fn for each dead letter of dlq stored when the scan
// starts, oldest first (by stream sequence), with an ordered consumer
// filtered on the queue's subjects of the dead-letter stream; a message fn
// removes is deleted from the stream by its sequence. It stops at the first
// error from fn, returned wrapped. A queue that holds no dead letters (or
// was never declared) gives (0, nil).
func (t *Transport) ScanDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *transport.Message) (transport.DeadLetterAction, error)) (removed int, err error) {
	if dlq == "" {
		return 0, errors.New("nats: ScanDeadLetters: dead-letter queue name is empty")
	}
	if fn == nil {
		return 0, errors.New("nats: ScanDeadLetters: fn is nil: pass a callback that decides what to do with each dead letter")
	}
	if t.isClosed() {
		return 0, fmt.Errorf("nats: scan dead letters: %w", transport.ErrClosed)
	}
	filter := deadFilter(t.cfg.Exchange, dlq)
	count, last, err := t.deadCount(ctx, filter)
	if err != nil || count == 0 {
		return 0, err
	}
	cons, err := t.dead.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return 0, fmt.Errorf("nats: scan dead letters of %q: %w", dlq, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, fmt.Errorf("nats: scan dead letters of %q: %w", dlq, err)
	}
	defer it.Stop()
	for {
		nm, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return removed, fmt.Errorf("nats: scan dead letters of %q: %w", dlq, err)
		}
		meta, err := nm.Metadata()
		if err != nil {
			return removed, fmt.Errorf("nats: scan dead letters of %q: %w", dlq, err)
		}
		seq := meta.Sequence.Stream
		if seq > last {
			return removed, nil // arrived during the scan
		}
		queue, cqrsID, _ := parseDeadSubject(t.cfg.Exchange, nm.Subject())
		headers, _, _ := inHeaders(nm.Headers())
		m := transport.Message{CQRSID: cqrsID, Queue: queue, Body: nm.Data(), Headers: headers}
		action, err := fn(ctx, &m)
		if err != nil {
			return removed, fmt.Errorf("nats: scan dead letters of %q: %w", dlq, err)
		}
		switch action {
		case transport.DeadLetterKeep:
		case transport.DeadLetterRemove:
			if err := t.dead.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return removed, fmt.Errorf("nats: remove dead letter %d from %q: %w", seq, dlq, err)
			}
			removed++
		default:
			return removed, fmt.Errorf("nats: scan dead letters of %q: callback returned unknown action %d", dlq, action)
		}
		if seq == last || meta.NumPending == 0 {
			return removed, nil
		}
	}
}

// PurgeDeadLetters removes every dead letter of dlq stored when it starts
// and returns how many there were.
func (t *Transport) PurgeDeadLetters(ctx context.Context, dlq string) (int, error) {
	if dlq == "" {
		return 0, errors.New("nats: PurgeDeadLetters: dead-letter queue name is empty")
	}
	if t.isClosed() {
		return 0, fmt.Errorf("nats: purge dead letters: %w", transport.ErrClosed)
	}
	filter := deadFilter(t.cfg.Exchange, dlq)
	count, last, err := t.deadCount(ctx, filter)
	if err != nil || count == 0 {
		return 0, err
	}
	if err := t.dead.Purge(ctx, jetstream.WithPurgeSubject(filter), jetstream.WithPurgeSequence(last+1)); err != nil {
		return 0, fmt.Errorf("nats: purge dead letters of %q: %w", dlq, err)
	}
	return count, nil
}

// deadCount returns how many dead letters match filter and the stream's
// last sequence, read together.
func (t *Transport) deadCount(ctx context.Context, filter string) (count int, last uint64, err error) {
	info, err := t.dead.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, 0, fmt.Errorf("nats: inspect dead letters %q: %w", filter, err)
	}
	for _, n := range info.State.Subjects {
		count += int(n)
	}
	return count, info.State.LastSeq, nil
}

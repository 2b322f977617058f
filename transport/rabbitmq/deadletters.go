package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
)

// Capabilities declares what RabbitMQ (with django-cqrs's topology, no
// plugins) can do: everything in [transport.Capabilities]. Unroutable
// messages are reported (mandatory publishing). Safe for concurrent use.
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{
		PerQueueOrder:     true,
		Durable:           true,
		Expiration:        true,
		Prefetch:          true,
		ReportsUnroutable: true,
		DirectToQueue:     true,
		NackRequeue:       true,
		DeadLetterBrowse:  true,
		DeadLetterRemove:  true,
	}
}

// BrowseDeadLetters implements [transport.DeadLetterBrowser]: it is
// ScanDeadLetters keeping every message, so each one it visits stays
// unacknowledged until the browse ends and is then requeued in its place.
// A queue that does not exist holds no dead letters (nil).
func (t *Transport) BrowseDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *transport.Message) error) error {
	_, err := t.ScanDeadLetters(ctx, dlq, transport.KeepAll(fn))
	return err
}

// ScanDeadLetters calls fn for each message that is in the dead-letter queue
// dlq when the scan starts, oldest first, on a dedicated channel of the
// subscribing connection. It fetches them one at a time with basic.get,
// up to the message count of a passive declaration made at the start, so
// messages that arrive meanwhile are not visited.
//
// A message fn keeps stays unacknowledged until the scan ends and is then
// requeued in its place, so it is never fetched twice in one scan; a message
// fn removes is acknowledged at once. On an error from fn (returned wrapped,
// so errors.Is finds it), on ctx's end, or on a broker error, the scan stops
// and that message and the rest stay in the queue. A queue that does not exist holds no dead letters: (0, nil).
//
// Removing is at-least-once: if the connection drops right after fn
// returned [transport.DeadLetterRemove], the broker may requeue the message.
func (t *Transport) ScanDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *transport.Message) (transport.DeadLetterAction, error)) (removed int, err error) {
	if dlq == "" {
		return 0, errors.New("rabbitmq: ScanDeadLetters: dead-letter queue name is empty")
	}
	if fn == nil {
		return 0, errors.New("rabbitmq: ScanDeadLetters: fn is nil: pass a callback that decides what to do with each dead letter")
	}
	ch, err := t.toolChannel(ctx)
	if err != nil {
		return 0, fmt.Errorf("rabbitmq: scan dead letters of %q: %w", dlq, err)
	}
	defer func() { _ = ch.Close() }()

	q, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil)
	if err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("rabbitmq: inspect dead-letter queue %q: %w", dlq, err)
	}
	var lastTag uint64 // highest delivery tag fetched, kept or not
	defer func() {
		if lastTag == 0 || ch.IsClosed() {
			return
		}
		// Requeue every kept (and the failed) message in one go; removed
		// ones are acked already, so multiple=true does not touch them.
		if nerr := ch.Nack(lastTag, true, true); nerr != nil && err == nil {
			err = fmt.Errorf("rabbitmq: requeue kept dead letters of %q: %w", dlq, nerr)
		}
	}()
	for range q.Messages {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("rabbitmq: scan dead letters of %q: %w", dlq, err)
		}
		d, ok, err := ch.Get(dlq, false)
		if err != nil {
			return removed, fmt.Errorf("rabbitmq: fetch dead letter from %q: %w", dlq, err)
		}
		if !ok {
			break // emptied by someone else meanwhile
		}
		lastTag = d.DeliveryTag
		m := message(&d)
		action, err := fn(ctx, &m)
		if err != nil {
			return removed, fmt.Errorf("rabbitmq: scan dead letters of %q: %w", dlq, err)
		}
		switch action {
		case transport.DeadLetterKeep:
		case transport.DeadLetterRemove:
			if err := ch.Ack(d.DeliveryTag, false); err != nil {
				return removed, fmt.Errorf("rabbitmq: remove dead letter from %q: %w", dlq, err)
			}
			removed++
		default:
			return removed, fmt.Errorf("rabbitmq: scan dead letters of %q: callback returned unknown action %d", dlq, action)
		}
	}
	return removed, nil
}

// PurgeDeadLetters removes every message from the dead-letter queue dlq
// (queue.purge) and returns how many there were. Unacknowledged messages
// (held by a running scan or consumer) are not purged. A queue that does not
// exist holds no dead letters: (0, nil).
func (t *Transport) PurgeDeadLetters(ctx context.Context, dlq string) (int, error) {
	if dlq == "" {
		return 0, errors.New("rabbitmq: PurgeDeadLetters: dead-letter queue name is empty")
	}
	ch, err := t.toolChannel(ctx)
	if err != nil {
		return 0, fmt.Errorf("rabbitmq: purge dead-letter queue %q: %w", dlq, err)
	}
	defer func() { _ = ch.Close() }()
	n, err := ch.QueuePurge(dlq, false)
	if err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("rabbitmq: purge dead-letter queue %q: %w", dlq, err)
	}
	return n, nil
}

// toolChannel opens a short-lived channel on the subscribing connection,
// waiting for it to be up (bounded by ctx).
func (t *Transport) toolChannel(ctx context.Context) (*amqp.Channel, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	for {
		conn, err := t.subConn.get(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			return ch, nil
		}
		if !conn.IsClosed() {
			return nil, fmt.Errorf("open channel: %w", err)
		}
		// Lost between get and Channel: get waits for the reconnection.
	}
}

package rabbitmq

import (
	"context"
	"fmt"

	"github.com/cqrsync/cqrsync/transport"
)

var _ transport.Inspector = (*Transport)(nil)

// Ping checks that the broker answers: it opens and closes a channel on the
// publishing connection (the one New opened), waiting (within ctx) for it
// to reconnect if it was lost.
func (t *Transport) Ping(ctx context.Context) error {
	if t.isClosed() {
		return fmt.Errorf("rabbitmq: ping: %w", transport.ErrClosed)
	}
	conn, err := t.pubConn.get(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq: ping: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("rabbitmq: ping: open channel: %w", err)
	}
	if err := ch.Close(); err != nil {
		return fmt.Errorf("rabbitmq: ping: close channel: %w", err)
	}
	return nil
}

// QueueDepth returns the number of ready messages in queue, from a passive
// queue declaration (which creates nothing).
func (t *Transport) QueueDepth(ctx context.Context, queue string) (int, error) {
	ch, err := t.toolChannel(ctx)
	if err != nil {
		return 0, fmt.Errorf("rabbitmq: depth of queue %q: %w", queue, err)
	}
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		if isNotFound(err) {
			return 0, fmt.Errorf("rabbitmq: depth of queue %q: %w", queue, transport.ErrQueueNotFound)
		}
		return 0, fmt.Errorf("rabbitmq: depth of queue %q: %w", queue, err)
	}
	return q.Messages, nil
}

package kafka

import (
	"context"
	"fmt"

	"github.com/cqrsync/cqrsync/transport"
)

var _ transport.Inspector = (*Transport)(nil)

// Ping returns nil when a broker answers a metadata request now.
func (t *Transport) Ping(ctx context.Context) error {
	if err := t.cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: no broker of %v answers: %w", t.cfg.Brokers, err)
	}
	return nil
}

// QueueDepth returns the lag of queue's consumer group: the records of its
// topics past its committed offsets. It counts what a member holds
// unsettled, and, with one broadcast topic for all models, the broadcasts
// of models the queue does not take (which it skips when it reaches them):
// an upper bound of what waits. A queue no Subscribe declared (its topic
// does not exist) returns an error wrapping [transport.ErrQueueNotFound].
func (t *Transport) QueueDepth(ctx context.Context, queue string) (int, error) {
	if topicName("queue", queue) != nil {
		return 0, fmt.Errorf("kafka: queue %q: %w", queue, transport.ErrQueueNotFound)
	}
	if ok, err := t.exists(ctx, t.cfg.queueTopic(queue)); err != nil {
		return 0, err
	} else if !ok {
		return 0, fmt.Errorf("kafka: queue %q: %w", queue, transport.ErrQueueNotFound)
	}
	group := t.cfg.group(queue)
	lags, err := t.adm.Lag(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("kafka: lag of group %s: %w", group, err)
	}
	total := 0
	for _, l := range lags {
		if err := l.Error(); err != nil {
			return 0, fmt.Errorf("kafka: lag of group %s: %w", group, err)
		}
		total += int(l.Lag.Total())
	}
	return total, nil
}

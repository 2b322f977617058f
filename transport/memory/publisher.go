package memory

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/amqptopology"
)

// publisher is the broker's [transport.Publisher].
type publisher struct {
	b      *Broker
	closed atomic.Bool
}

// Publish copies every message (the caller may reuse its buffers as soon as
// Publish returns) and enqueues it, in order, on every queue bound to its
// routing key (an IntoQueue message on its declared queue, whatever that is
// bound to), then returns nil. A message that matches no binding is
// dropped silently, as RabbitMQ drops an unroutable message (django-cqrs
// ignores returned messages): a model no replica subscribes to is not an
// error. Publish never blocks; it fails only when ctx is already done, the
// publisher is closed ([transport.ErrClosed]), or Config.FailPublish rejects
// messages (*[transport.PublishError]).
func (p *publisher) Publish(ctx context.Context, msgs []transport.Message) error {
	if p.closed.Load() {
		return fmt.Errorf("memory: publish: %w", transport.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: publish: %w", context.Cause(ctx))
	}
	b := p.b

	// Copy and filter outside the lock: FailPublish may call the broker.
	var (
		failed   []int
		firstErr error
		needNow  bool
	)
	copies := make([]transport.Message, 0, len(msgs))
	index := make([]int, 0, len(msgs)) // copies[j] is msgs[index[j]]
	for i := range msgs {
		m := &msgs[i]
		if b.failPublish != nil {
			if err := b.failPublish(m); err != nil {
				failed = append(failed, i)
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
		}
		c := *m
		c.Body = append([]byte(nil), m.Body...)
		c.Headers = cloneHeaders(m.Headers)
		needNow = needNow || c.Expiration > 0
		copies = append(copies, c)
		index = append(index, i)
	}
	var now time.Time
	if needNow {
		now = b.now()
	}

	b.mu.Lock()
	touched := b.touched[:0]
	for i := range copies {
		m := &copies[i]
		key := amqptopology.RoutingKey(m)
		qs := b.bindings[key]
		if m.IntoQueue && m.Queue != "" {
			q := b.queues[m.Queue]
			if q == nil {
				// Put into a queue by name, as a dead letter is: dropping it
				// would lose it, so the caller learns the queue is missing.
				failed = append(failed, index[i])
				if firstErr == nil {
					firstErr = fmt.Errorf("memory: publish into queue %s: no such queue: declare it (subscribing declares a queue and its dead-letter queue)", m.Queue)
				}
				continue
			}
			qs = []*queue{q} // RabbitMQ's default exchange: the queue by name
		}
		if len(qs) == 0 {
			b.logger.Debug("memory: unroutable message dropped", "routing_key", key, "cqrs_id", m.CQRSID)
			continue
		}
		for _, q := range qs {
			b.enqueueLocked(q, m, now)
			if !q.touched {
				q.touched = true
				touched = append(touched, q)
			}
		}
	}
	for i, q := range touched {
		q.touched = false
		b.dispatchLocked(q)
		touched[i] = nil
	}
	b.touched = touched[:0]
	b.mu.Unlock()

	if failed != nil {
		slices.Sort(failed)
		return &transport.PublishError{Failed: failed, Err: firstErr}
	}
	return nil
}

// Close makes later Publish calls fail with [transport.ErrClosed]. It is
// idempotent and always returns nil.
func (p *publisher) Close() error {
	p.closed.Store(true)
	return nil
}

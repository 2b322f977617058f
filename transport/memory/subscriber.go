package memory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// subscriber is the broker's [transport.Subscriber].
type subscriber struct {
	b      *Broker
	closed bool                       // under b.mu
	subs   map[*subscription]struct{} // open subscriptions; under b.mu
}

// Capabilities returns the broker's [Broker.Capabilities].
func (s *subscriber) Capabilities() transport.Capabilities { return s.b.Capabilities() }

// Subscribe declares params.Queue and its dead-letter queue, binds them for
// every CQRS ID (see [Broker.DeclareQueue]) and starts delivering, sharing the
// queue round-robin with the other subscriptions on it. It fails if params
// does not validate, ctx is done, or the subscriber is closed.
func (sr *subscriber) Subscribe(ctx context.Context, params *transport.SubscribeParams) (transport.Subscription, error) {
	if params == nil {
		return nil, errors.New("memory: subscribe: params is nil: pass the queue name and CQRS IDs")
	}
	p := params.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("memory: subscribe: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: subscribe: %w", context.Cause(ctx))
	}
	b := sr.b
	s := &subscription{
		b:        b,
		owner:    sr,
		prefetch: p.Prefetch,
		out:      make(chan transport.Delivery),
		notify:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		unacked:  make(map[uint64]*entry),
	}

	b.mu.Lock()
	if sr.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("memory: subscribe: %w", transport.ErrClosed)
	}
	s.q = b.declareLocked(p.Queue, p.DeadLetterQueue, p.CQRSIDs)
	s.q.consumers = append(s.q.consumers, s)
	b.subs[s] = struct{}{}
	sr.subs[s] = struct{}{}
	// Registered under the lock, because endLocked calls stopAfter. If ctx is
	// already done, the callback runs in its own goroutine and waits for the
	// lock, so it cannot run before the subscription is complete.
	s.stopAfter = context.AfterFunc(ctx, func() {
		b.mu.Lock()
		s.endLocked(nil)
		b.mu.Unlock()
	})
	b.dispatchLocked(s.q)
	b.mu.Unlock()

	go s.loop()
	return s, nil
}

// Close ends every subscription this subscriber opened (their Err stays
// nil, their unsettled messages go back to the queue) and makes later
// Subscribe calls fail with [transport.ErrClosed]. Queues and bindings stay
// on the broker. It waits until the deliveries channels are closed. It is
// idempotent and always returns nil.
func (sr *subscriber) Close() error {
	b := sr.b
	b.mu.Lock()
	sr.closed = true
	ended := make([]*subscription, 0, len(sr.subs))
	for s := range sr.subs {
		ended = append(ended, s)
	}
	for _, s := range ended {
		s.endLocked(nil)
	}
	b.mu.Unlock()
	for _, s := range ended {
		<-s.exited
	}
	return nil
}

// pendingDelivery is a message dispatched to a subscription and not yet
// passed to its deliveries channel.
type pendingDelivery struct {
	e           *entry
	id          uint64
	redelivered bool
	attempt     int
	delays      int
}

// subscription is one consumer on one queue. The broker dispatches messages
// to it under the broker lock (they count against prefetch from then on, as
// RabbitMQ counts messages in flight to the client); its own goroutine, loop,
// passes them to the unbuffered deliveries channel.
type subscription struct {
	b        *Broker
	owner    *subscriber
	prefetch int
	out      chan transport.Delivery
	notify   chan struct{} // cap 1: pending is not empty
	done     chan struct{} // closed by endLocked
	exited   chan struct{} // closed when loop has closed out

	// Under b.mu:
	q         *queue
	ended     bool
	err       error
	nextID    uint64
	unacked   map[uint64]*entry // every dispatched, unsettled message, including pending ones
	pending   []pendingDelivery
	stopAfter func() bool
}

// deliverLocked hands e to s.
func (s *subscription) deliverLocked(e *entry) {
	e.state = stateUnacked
	e.attempts++
	s.q.unacked++
	s.nextID++
	s.unacked[s.nextID] = e
	s.pending = append(s.pending, pendingDelivery{e: e, id: s.nextID, redelivered: e.redelivered, attempt: e.attempts, delays: e.delays})
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// endLocked ends the subscription with err (nil for a deliberate close):
// detaches it from its queue, puts its unsettled messages back at the front
// of the queue and lets the other consumers have them, and tells loop to
// close the deliveries channel.
func (s *subscription) endLocked(err error) {
	if s.ended {
		return
	}
	s.ended = true
	s.err = err
	s.stopAfter()
	b := s.b
	s.q.removeConsumer(s)
	delete(b.subs, s)
	delete(s.owner.subs, s)
	if len(s.unacked) > 0 {
		es := make([]*entry, 0, len(s.unacked))
		for _, e := range s.unacked {
			es = append(es, e)
		}
		b.requeueLocked(s.q, es)
	}
	s.unacked = nil
	s.pending = nil
	close(s.done)
	b.dispatchLocked(s.q)
}

// loop moves dispatched messages to the deliveries channel until the
// subscription ends. Messages it holds when the subscription ends are
// already in s.unacked, so endLocked requeues them: nothing is lost between
// dispatch and delivery.
func (s *subscription) loop() {
	defer close(s.exited)
	defer close(s.out)
	var batch []pendingDelivery
	for {
		s.b.mu.Lock()
		if s.ended {
			s.b.mu.Unlock()
			return
		}
		batch, s.pending = s.pending, batch[:0]
		s.b.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-s.notify:
				continue
			case <-s.done:
				return
			}
		}
		for _, p := range batch {
			d := p.e.delivery(p.id, p.redelivered, p.attempt, p.delays)
			select {
			case s.out <- d:
			case <-s.done:
				return
			}
		}
		clear(batch)
	}
}

// Deliveries returns the unbuffered channel of deliveries, closed when the
// subscription ends.
func (s *subscription) Deliveries() <-chan transport.Delivery { return s.out }

// Ack settles deliveries as processed. IDs this subscription did not hand
// out, or already settled, are reported in an error wrapping
// [ErrUnknownDelivery]; the valid ones are settled anyway. After the
// subscription ended it returns [transport.ErrClosed] (the deliveries were
// requeued).
func (s *subscription) Ack(ctx context.Context, ids ...uint64) error {
	return s.settle(ctx, "ack", false, 0, ids)
}

// Nack settles deliveries as not processed. With requeue they go back to the
// front of the queue, in their original order, marked redelivered; without,
// they are dropped. Errors as for Ack.
func (s *subscription) Nack(ctx context.Context, requeue bool, ids ...uint64) error {
	return s.settle(ctx, "nack", requeue, 0, ids)
}

// NackDelay settles deliveries as not processed; delay later, on a timer of
// real time (not Config.Now), each goes back to the end of its queue,
// marked redelivered, and is dispatched. Meanwhile it counts in QueueLen
// but against no prefetch window. Without Config.DelayedRedelivery it
// returns an error wrapping [transport.ErrNotSupported] and settles nothing.
// A delay of 0 or less is Nack with requeue. Errors otherwise as for Ack.
func (s *subscription) NackDelay(ctx context.Context, delay time.Duration, ids ...uint64) error {
	if !s.b.delayedRedelivery {
		return fmt.Errorf("memory: nack with a delay: %w (set Config.DelayedRedelivery)", transport.ErrNotSupported)
	}
	return s.settle(ctx, "nack with a delay", true, delay, ids)
}

// settle acks (not requeue), drops (requeue false, op "nack"), requeues
// (requeue, delay <= 0) or delays (requeue, delay > 0) the deliveries ids.
func (s *subscription) settle(ctx context.Context, op string, requeue bool, delay time.Duration, ids []uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %s: %w", op, context.Cause(ctx))
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.ended {
		return fmt.Errorf("memory: %s: %w", op, transport.ErrClosed)
	}
	var (
		unknown []uint64
		back    []*entry
	)
	for _, id := range ids {
		e, ok := s.unacked[id]
		if !ok {
			unknown = append(unknown, id)
			continue
		}
		delete(s.unacked, id)
		if requeue {
			back = append(back, e)
			continue
		}
		e.state = stateGone
		s.q.unacked--
	}
	switch {
	case len(back) > 0 && delay > 0:
		b.delayLocked(s.q, back, delay)
	case len(back) > 0:
		b.requeueLocked(s.q, back)
	}
	if len(unknown) < len(ids) {
		b.dispatchLocked(s.q)
	}
	if unknown != nil {
		return fmt.Errorf("memory: %s delivery IDs %v: %w", op, unknown, ErrUnknownDelivery)
	}
	return nil
}

// Err returns nil while the subscription runs and after Close, a cancelled
// context or the subscriber's Close; [ErrConnectionLost] after
// [Broker.CutConnections].
func (s *subscription) Err() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.err
}

// Close ends the subscription: unsettled deliveries go back to the front of
// the queue, marked redelivered, and the deliveries channel is closed before
// Close returns. It is idempotent and always returns nil.
func (s *subscription) Close() error {
	s.b.mu.Lock()
	s.endLocked(nil)
	s.b.mu.Unlock()
	<-s.exited
	return nil
}

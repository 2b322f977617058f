package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
)

// errSubscriptionClosed is the cancel cause of a subscription ended by Close.
var errSubscriptionClosed = errors.New("rabbitmq: subscription closed")

// Subscribe declares the exchange, params.Queue and its dead-letter queue
// (durable, no arguments), binds them as django-cqrs does for every CQRS ID
// (queue ← "<cqrs_id>" and "cqrs.<queue>.<cqrs_id>"; dead-letter queue ←
// "cqrs.<dead-letter queue>.<cqrs_id>"), sets the prefetch (basic.qos,
// per consumer) and starts a manual-ack consumer on its own channel of the
// subscribing connection.
//
// Errors of that first setup are returned, notably a declaration refused by
// the broker (PRECONDITION_FAILED: an object exists with other flags or
// arguments; ACCESS_REFUSED). After that, the subscription survives
// connection losses by itself: it reconnects with backoff, declares the
// topology again and resumes; deliveries that were not settled on the lost
// channel are redelivered by the broker. The deliveries channel closes when
// ctx is done, on Close (of the subscription or the Transport), or on a
// permanent error reported by Err; a connection loss does not close it.
//
// The returned [transport.Subscription]:
//
//   - numbers deliveries with IDs that keep growing across reconnections,
//     so an ID always names one delivery of one channel;
//   - coalesces acknowledgements: Ack sends one basic.ack with
//     multiple=true as soon as the acked deliveries are the oldest
//     outstanding ones of the channel, covering every acked delivery older
//     than the oldest unsettled one. Acked deliveries behind an unsettled
//     one are held until it is settled (workers that each ack their own
//     batch of interleaved deliveries, a few milliseconds apart, settle in
//     a few frames), but at most about 2 ms and at most a quarter of the
//     prefetch: past either bound they are acked singly, so an unsettled
//     delivery (held by a retry) never stalls the subscription;
//   - sends Nack at once: one basic.nack with multiple=true for the part of
//     the IDs that are the oldest outstanding deliveries (held acks count as
//     outstanding, a multiple nack never covers them), and singly for the
//     rest;
//   - returns an error wrapping [ErrDeliveryRequeued] from Ack, or from Nack
//     without requeue, for IDs of a channel that was lost before they were
//     settled, or lost while sending their frame: the broker requeued them
//     and delivers them again with new IDs. Nack with requeue returns nil
//     for them, since that is done. An Ack that returned nil may still not
//     have reached the broker, when the channel is lost while the ack was
//     held (within the bounds above): the broker then redelivers those
//     messages too, marked Redelivered, with new IDs. Delivery stays
//     at-least-once; a consumer whose apply is idempotent (cqrsync's
//     replica, guarded by revisions) drops the duplicates;
//   - returns an error, and sends nothing, for unknown or already settled
//     IDs (a second ack of a delivery tag would make the broker close the
//     channel);
//   - on Close, sends the held acks and then closes its channel, which hands
//     the unsettled deliveries back to the queue; later Ack and Nack calls
//     return [transport.ErrClosed]. Held acks are also sent when the
//     delivery loop ends otherwise and the channel is still open (the
//     Subscribe context ends, the broker cancels the consumer).
func (t *Transport) Subscribe(ctx context.Context, params *transport.SubscribeParams) (transport.Subscription, error) {
	if params == nil {
		return nil, errors.New("rabbitmq: Subscribe: params is nil: pass the queue name and CQRS IDs")
	}
	p := params.WithDefaults()
	p.CQRSIDs = slices.Clone(p.CQRSIDs)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Prefetch > maxPrefetch {
		return nil, fmt.Errorf("rabbitmq: SubscribeParams.Prefetch is %d: AMQP allows at most %d", p.Prefetch, maxPrefetch)
	}
	life, cancel := context.WithCancelCause(ctx)
	s := &subscription{
		t:        t,
		params:   p,
		log:      t.cfg.Logger.With(slog.String("queue", p.Queue)),
		out:      make(chan transport.Delivery),
		cancel:   cancel,
		done:     make(chan struct{}),
		requeued: make(map[uint64]struct{}),
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		cancel(nil)
		return nil, transport.ErrClosed
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()

	sess, err := s.open(life)
	if err == nil {
		s.mu.Lock()
		if s.closing {
			err = transport.ErrClosed // Transport.Close raced with us
		} else {
			s.running = true
		}
		s.mu.Unlock()
		if err != nil {
			_ = sess.ch.Close()
		}
	}
	if err != nil {
		s.mu.Lock()
		if s.closing {
			err = transport.ErrClosed // Transport.Close interrupted us
		}
		s.mu.Unlock()
		cancel(nil)
		t.unregister(s)
		return nil, fmt.Errorf("rabbitmq: subscribe to queue %q: %w", p.Queue, err)
	}
	go s.run(life, sess)
	return s, nil
}

func (t *Transport) unregister(s *subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

// subscription implements transport.Subscription.
//
// Delivery IDs are the channel's delivery tag plus the session's base, the
// highest ID handed out before that channel opened, so they keep growing
// across reconnections and an ID always names one channel.
type subscription struct {
	t      *Transport
	params transport.SubscribeParams
	log    *slog.Logger
	out    chan transport.Delivery
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when run has returned

	mu       sync.Mutex // guards the fields below and orders acks on the wire
	sess     *session   // current channel; nil between channels
	lastID   uint64     // highest ID handed out so far
	requeued map[uint64]struct{}
	running  bool // run was started: Close waits for done
	closing  bool // Close was called
	ended    bool // run returned
	err      error
}

// session is one channel's consumer.
type session struct {
	ch         *amqp.Channel
	closes     chan *amqp.Error
	deliveries <-chan amqp.Delivery
	base       uint64
	tags       tagSet // delivered, not yet settled on the wire

	// The fields below are guarded by subscription.mu.
	flush      *time.Timer // sends held acks that waited ackHold
	flushArmed bool        // flush will fire
	ended      bool        // retired by end: nothing more is sent
}

// open declares the topology and starts consuming on a new channel.
func (s *subscription) open(ctx context.Context) (*session, error) {
	conn, err := s.t.subConn.get(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	sess := &session{ch: ch, closes: ch.NotifyClose(make(chan *amqp.Error, 1))}
	if err := declareTopology(ch, s.t.cfg.Exchange, &s.params); err != nil {
		_ = ch.Close()
		return nil, err
	}
	if err := ch.Qos(s.params.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("set prefetch %d: %w", s.params.Prefetch, err)
	}
	sess.deliveries, err = ch.Consume(s.params.Queue, "", false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("consume queue %q: %w", s.params.Queue, err)
	}
	s.mu.Lock()
	sess.base = s.lastID
	s.sess = sess
	s.mu.Unlock()
	return sess, nil
}

// run forwards deliveries and replaces the channel whenever it is lost.
func (s *subscription) run(ctx context.Context, sess *session) {
	var final error
	defer func() {
		s.mu.Lock()
		s.ended = true
		s.err = final
		s.mu.Unlock()
		close(s.out)
		s.t.unregister(s)
		close(s.done)
	}()
	for {
		cause := s.pump(ctx, sess)
		s.end(sess, ctx.Err() == nil)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("rabbitmq: subscription channel lost; resuming", slog.Any("error", cause))
		for attempt := 0; ; attempt++ {
			if !sleepCtx(ctx, s.t.cfg.ReconnectBackoff.delay(attempt)) {
				return
			}
			var err error
			sess, err = s.open(ctx)
			if err == nil {
				s.log.Info("rabbitmq: subscription resumed", slog.Int("attempts", attempt+1))
				break
			}
			switch {
			case ctx.Err() != nil, errors.Is(err, transport.ErrClosed):
				return
			case permanent(err):
				s.log.Error("rabbitmq: subscription ended", slog.Any("error", err))
				final = fmt.Errorf("rabbitmq: resubscribe to queue %q: %w", s.params.Queue, err)
				return
			}
			s.log.Warn("rabbitmq: resubscribing failed", slog.Int("attempt", attempt+1), slog.Any("error", err))
		}
	}
}

// pump hands the session's deliveries out until the channel closes (it
// returns why) or ctx ends (it returns nil).
func (s *subscription) pump(ctx context.Context, sess *session) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sess.closes:
			return closeCause(e, ok)
		case d, ok := <-sess.deliveries:
			if !ok {
				if sess.ch.IsClosed() {
					// The close reason was queued before the deliveries
					// channel was closed.
					e, ok := <-sess.closes
					return closeCause(e, ok)
				}
				return errors.New("the broker cancelled the consumer (queue deleted?)")
			}
			del := transport.Delivery{Message: message(&d), Redelivered: d.Redelivered}
			s.mu.Lock()
			del.ID = sess.base + d.DeliveryTag
			s.lastID = max(s.lastID, del.ID)
			sess.tags.add(d.DeliveryTag)
			s.mu.Unlock()
			select {
			case s.out <- del:
			case <-ctx.Done():
				return nil
			case e, ok := <-sess.closes:
				// Never seen by the caller: the broker requeues it.
				s.mu.Lock()
				sess.tags.remove(d.DeliveryTag)
				s.mu.Unlock()
				return closeCause(e, ok)
			}
		}
	}
}

func closeCause(e *amqp.Error, ok bool) error {
	if ok && e != nil {
		return e
	}
	return amqp.ErrClosed
}

// end retires sess: later acks of its deliveries report ErrDeliveryRequeued
// (when lost) or ErrClosed (when the subscription ends).
func (s *subscription) end(sess *session, lost bool) {
	s.mu.Lock()
	if s.sess == sess {
		s.sess = nil
	}
	sess.ended = true
	if sess.flush != nil {
		sess.flush.Stop()
	}
	if !sess.ch.IsClosed() {
		// Send the held acks, so that a graceful stop redelivers only what
		// was not acked. If the channel is gone, the broker requeues them.
		_ = sess.sendAcks(sess.tags.flushAll())
	}
	if lost {
		for tag := range sess.tags.live {
			s.requeued[sess.base+tag] = struct{}{}
		}
	}
	s.mu.Unlock()
	if !sess.ch.IsClosed() {
		// Closing the channel hands its unacknowledged messages back to the
		// queue.
		_ = sess.ch.Close()
	}
}

// Deliveries returns the channel of incoming messages. It is closed when the
// subscription ends (Close, the Subscribe context, Transport.Close, or a
// permanent broker error reported by Err); a connection loss does not close
// it.
func (s *subscription) Deliveries() <-chan transport.Delivery { return s.out }

// Err returns why the deliveries channel closed: nil after Close or a
// cancelled context, otherwise the permanent broker error.
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops the consumer and closes its channel: unsettled deliveries go
// back to the queue. It waits for the delivery goroutine and is idempotent.
func (s *subscription) Close() error {
	s.mu.Lock()
	s.closing = true
	running := s.running
	s.mu.Unlock()
	s.cancel(errSubscriptionClosed)
	if running {
		<-s.done
	}
	return nil
}

// Ack acknowledges deliveries; see Transport.Subscribe for the details.
func (s *subscription) Ack(ctx context.Context, ids ...uint64) error {
	return s.settle(ctx, "ack", ids, false, s.ackTags)
}

// Nack rejects deliveries; see Transport.Subscribe for the details.
func (s *subscription) Nack(ctx context.Context, requeue bool, ids ...uint64) error {
	return s.settle(ctx, "nack", ids, requeue, func(sess *session, tags []uint64) error {
		return s.nackTags(sess, tags, requeue)
	})
}

// NackDelay returns an error wrapping [transport.ErrNotSupported] and settles
// nothing: RabbitMQ cannot delay a redelivery without plugins, so the
// consumer keeps the retry delay in its own memory, as django-cqrs does
// (Capabilities.DelayedRedelivery is false).
func (s *subscription) NackDelay(_ context.Context, _ time.Duration, _ ...uint64) error {
	return fmt.Errorf("rabbitmq: nack with a delay: %w", transport.ErrNotSupported)
}

// settle checks ids and passes the current session's live tags among them
// (sorted, distinct) to send, whose error means the channel is gone. With
// requeuedOK, IDs that the broker requeued are settled as asked (a nack with
// requeue).
func (s *subscription) settle(ctx context.Context, op string, ids []uint64, requeuedOK bool, send func(*session, []uint64) error) error {
	if len(ids) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rabbitmq: %s: %w", op, err)
	}
	// The lock also keeps frames in the order they were computed: a
	// multiple=true ack or nack overtaken by a later frame would name tags
	// the broker already forgot, or settle held ones the wrong way.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.closing {
		return fmt.Errorf("rabbitmq: %s: %w (its unsettled deliveries went back to the queue)", op, transport.ErrClosed)
	}
	sess := s.sess
	var stale, unknown []uint64
	tags := make([]uint64, 0, len(ids))
	for _, id := range ids {
		if _, ok := s.requeued[id]; ok {
			delete(s.requeued, id)
			stale = append(stale, id)
			continue
		}
		if sess == nil || id <= sess.base || !sess.tags.has(id-sess.base) {
			unknown = append(unknown, id)
			continue
		}
		tags = append(tags, id-sess.base)
	}
	slices.Sort(tags)
	for i := 1; i < len(tags); i++ {
		if tags[i] == tags[i-1] {
			unknown = append(unknown, sess.base+tags[i])
		}
	}
	tags = slices.Compact(tags)

	var errs []error
	if len(tags) > 0 {
		if err := send(sess, tags); err != nil && !requeuedOK {
			// The channel is gone: whatever was not settled is requeued.
			errs = append(errs, fmt.Errorf("rabbitmq: %s %d deliveries: %w (%v)", op, len(tags), ErrDeliveryRequeued, err))
		}
	}
	if len(stale) > 0 && !requeuedOK {
		errs = append(errs, fmt.Errorf("rabbitmq: %s deliveries %v: %w", op, stale, ErrDeliveryRequeued))
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("rabbitmq: %s: unknown or already settled delivery IDs %v", op, unknown))
	}
	return errors.Join(errs...)
}

// ackTags holds the live tags of sess (sorted, distinct) and sends the
// multiple ack they allow, if any; past maxHeld held tags it sends the
// longest held ones singly, down to half of maxHeld. It returns an error
// when the channel is gone, which requeued tags.
func (s *subscription) ackTags(sess *session, tags []uint64) error {
	var err error
	now := time.Now()
	if upTo := sess.tags.ack(tags, now); upTo > 0 {
		err = sess.ch.Ack(upTo, true)
	}
	if n, limit := sess.tags.heldCount(), maxHeld(s.params.Prefetch); err == nil && n > limit {
		err = sess.sendAcks(0, sess.tags.flush(n-limit/2, now))
	}
	if err == nil && sess.tags.heldCount() > 0 {
		if sess.ch.IsClosed() {
			return amqp.ErrClosed // nothing held will go out
		}
		s.armFlush(sess)
	}
	return err
}

// nackTags settles the live tags of sess (sorted, distinct) as not
// processed, then acks the held tags this made the oldest outstanding ones.
func (s *subscription) nackTags(sess *session, tags []uint64, requeue bool) error {
	upTo, singles := sess.tags.nack(tags)
	var err error
	if upTo > 0 {
		err = sess.ch.Nack(upTo, true, requeue)
	}
	for _, tag := range singles {
		if err != nil {
			return err
		}
		err = sess.ch.Nack(tag, false, requeue)
	}
	if err != nil {
		return err
	}
	if upTo := sess.tags.release(); upTo > 0 {
		// A failure concerns others' acks, which returned already: the
		// broker requeues those deliveries.
		_ = sess.ch.Ack(upTo, true)
	}
	return nil
}

// sendAcks acks with multiple=true up to upTo (unless 0), then singles.
func (sess *session) sendAcks(upTo uint64, singles []uint64) error {
	if upTo > 0 {
		if err := sess.ch.Ack(upTo, true); err != nil {
			return err
		}
	}
	for _, tag := range singles {
		if err := sess.ch.Ack(tag, false); err != nil {
			return err
		}
	}
	return nil
}

// armFlush makes sure the session's timer will send the held tags that
// waited ackHold. The caller holds s.mu.
func (s *subscription) armFlush(sess *session) {
	if sess.flushArmed || sess.ended {
		return
	}
	at, ok := sess.tags.oldestHeld()
	if !ok {
		return
	}
	d := time.Until(at.Add(ackHold))
	sess.flushArmed = true
	if sess.flush == nil {
		sess.flush = time.AfterFunc(d, func() { s.flushAged(sess) })
	} else {
		sess.flush.Reset(d)
	}
}

// flushAged is the session's timer: it sends singly the held tags that
// waited ackHold (they are not the oldest outstanding ones, or they would
// have gone out in a multiple ack), and arms the timer for the others.
func (s *subscription) flushAged(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.flushArmed = false
	if sess.ended {
		return
	}
	if err := sess.sendAcks(0, sess.tags.flush(math.MaxInt, time.Now().Add(-ackHold))); err != nil {
		return // the channel is gone: the broker requeues what was held
	}
	s.armFlush(sess)
}

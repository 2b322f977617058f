package rabbitmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/amqptopology"
)

// pubChannel is a confirm-mode channel of the publishing connection, used by
// one Publish call at a time.
type pubChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return // basic.return of mandatory messages
	closes  chan *amqp.Error // channel or connection closure, buffered
	reason  error            // why it closed, once known
}

// closeReason returns why the channel closed (or nil while it is open).
func (pc *pubChannel) closeReason() error {
	if pc.reason != nil {
		return pc.reason
	}
	if !pc.ch.IsClosed() {
		return nil
	}
	select {
	case e, ok := <-pc.closes:
		if ok && e != nil {
			pc.reason = e
			return e
		}
	default:
	}
	pc.reason = amqp.ErrClosed
	return pc.reason
}

// channelPool hands out at most cfg.ChannelPool publishing channels at once
// and keeps the idle ones open.
type channelPool struct {
	t      *Transport
	tokens chan struct{}
	idle   chan *pubChannel
	done   chan struct{}
}

func newChannelPool(t *Transport) *channelPool {
	return &channelPool{
		t:      t,
		tokens: make(chan struct{}, t.cfg.ChannelPool),
		idle:   make(chan *pubChannel, t.cfg.ChannelPool),
		done:   make(chan struct{}),
	}
}

// acquire returns a channel for exclusive use, waiting for a free slot and,
// while the broker is unreachable, for the reconnection (bounded by ctx).
func (p *channelPool) acquire(ctx context.Context) (*pubChannel, error) {
	select {
	case p.tokens <- struct{}{}:
	case <-p.done:
		return nil, transport.ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free publishing channel: %w", ctx.Err())
	}
	for {
		select {
		case pc := <-p.idle:
			if !pc.ch.IsClosed() {
				return pc, nil
			}
			continue
		default:
		}
		pc, conn, err := p.open(ctx)
		if err == nil {
			return pc, nil
		}
		if conn == nil || !conn.IsClosed() {
			<-p.tokens
			return nil, err
		}
		// The connection dropped while the channel was being set up: get
		// waits for the reconnection.
	}
}

// open opens and sets up a channel on the current connection, which it
// returns too (nil if there was none), so that the caller can tell a lost
// connection from a failure.
func (p *channelPool) open(ctx context.Context) (*pubChannel, *amqp.Connection, error) {
	conn, err := p.t.pubConn.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	pc, err := p.setup(conn)
	return pc, conn, err
}

func (p *channelPool) setup(conn *amqp.Connection) (*pubChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publishing channel: %w", err)
	}
	pc := &pubChannel{
		ch:      ch,
		closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
		returns: ch.NotifyReturn(make(chan amqp.Return, 256)),
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	if err := declareExchange(ch, p.t.cfg.Exchange); err != nil {
		_ = ch.Close()
		return nil, err
	}
	return pc, nil
}

// release gives pc back. A channel that may still have confirmations or
// returns in flight for an abandoned batch is closed instead, so that they
// cannot be taken for the next batch's.
func (p *channelPool) release(pc *pubChannel, reusable bool) {
	if reusable && !pc.ch.IsClosed() {
		select {
		case p.idle <- pc:
			<-p.tokens
			return
		default:
		}
	}
	if !pc.ch.IsClosed() {
		// Close it in the background: the caller's context may be done
		// already. Once the transport is closing, its connection's close
		// takes care of the channel.
		t := p.t
		t.mu.Lock()
		if !t.closed {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				_ = pc.ch.Close()
			}()
		}
		t.mu.Unlock()
	}
	<-p.tokens
}

// close stops handing out channels; the connection's close closes them.
func (p *channelPool) close() {
	close(p.done)
}

// Publish sends msgs to the exchange, each under its
// [amqptopology.RoutingKey] (an IntoQueue message to the default
// exchange, under its queue's name, with the CQRS ID in the
// [amqptopology.HeaderCQRSID] header), as persistent text/plain messages with
// mandatory=true, and returns nil once the broker has confirmed every one of
// them (confirmed means enqueued on every bound queue, and written to disk
// for durable queues).
//
// The batch is pipelined on one confirm-mode channel: up to
// [Config.ConfirmWindow] messages are in flight before Publish waits for the
// oldest confirmation. When some message is not accepted, Publish returns a
// [*transport.PublishError] whose Failed lists exactly the indexes of those
// messages (and whose Unroutable lists the messages the broker returned as
// routed to no queue), with the causes joined in Err: [ErrUnroutable] (the broker
// returned it: no queue is bound to its routing key; see
// [Config.DropUnroutable]), [ErrNacked], [ErrConnectionLost] (unconfirmed
// when the connection dropped; the transport reconnects in the background),
// or ctx's error. Messages not listed are on the broker.
//
// Safe for concurrent use: up to [Config.ChannelPool] calls proceed at once,
// others wait for a channel. While the connection is down, Publish waits for
// the reconnection, bounded by ctx.
func (t *Transport) Publish(ctx context.Context, msgs []transport.Message) error {
	if t.isClosed() {
		if len(msgs) == 0 {
			return transport.ErrClosed
		}
		return &transport.PublishError{Failed: allIndexes(len(msgs)), Err: transport.ErrClosed}
	}
	if len(msgs) == 0 {
		return nil
	}
	pc, err := t.pool.acquire(ctx)
	if err != nil {
		return &transport.PublishError{Failed: allIndexes(len(msgs)), Err: fmt.Errorf("rabbitmq: %w", err)}
	}
	b := batch{t: t, pc: pc, msgs: msgs, failed: make([]error, len(msgs))}
	reusable := b.run(ctx)
	t.pool.release(pc, reusable)
	return b.result()
}

// batch is the state of one Publish call.
type batch struct {
	t      *Transport
	pc     *pubChannel
	msgs   []transport.Message
	dcs    []*amqp.DeferredConfirmation
	failed []error // per message: nil when confirmed
	// returned marks messages the broker returned; lastReturned is the index
	// of the latest one (returns arrive in publish order).
	returned     []bool
	lastReturned int
}

// run publishes and waits for every confirmation. It reports whether the
// channel is clean for the next batch.
func (b *batch) run(ctx context.Context) (reusable bool) {
	n := len(b.msgs)
	window := b.t.cfg.ConfirmWindow
	b.dcs = make([]*amqp.DeferredConfirmation, n)
	b.lastReturned = -1
	exchange := b.t.cfg.Exchange

	sent, oldest := 0, 0
	for ; sent < n; sent++ {
		for sent-oldest >= window {
			if !b.wait(ctx, oldest) {
				b.abandon(oldest, sent, ctx.Err())
				return false
			}
			oldest++
		}
		m := &b.msgs[sent]
		ex := exchange
		if m.IntoQueue && m.Queue != "" {
			ex = "" // the default exchange: routed by queue name, whatever the bindings
		}
		dc, err := b.pc.ch.PublishWithDeferredConfirmWithContext(ctx, ex, amqptopology.RoutingKey(m), true, false, b.t.publishing(m))
		if err != nil {
			cause := err
			if ctx.Err() == nil {
				cause = b.lostError(err)
			}
			for i := sent; i < n; i++ {
				b.failed[i] = cause
			}
			break
		}
		b.dcs[sent] = dc
	}
	for ; oldest < sent; oldest++ {
		if !b.wait(ctx, oldest) {
			b.abandon(oldest, sent, ctx.Err())
			return false
		}
	}
	// Every basic.return precedes its message's basic.ack on the wire, and
	// amqp091 hands it to b.pc.returns before it processes that ack: all
	// returns of this batch are in the buffer now.
drain:
	for {
		select {
		case r, ok := <-b.pc.returns:
			if !ok {
				break drain
			}
			b.matchReturn(&r)
		default:
			break drain
		}
	}
	return sent == n && b.pc.closeReason() == nil
}

// wait blocks until message i is confirmed (or nacked, or lost with the
// channel), draining returns meanwhile. It reports false when ctx ended.
func (b *batch) wait(ctx context.Context, i int) bool {
	dc := b.dcs[i]
	returns := b.pc.returns
	for {
		select {
		case <-dc.Done():
			if !dc.Acked() {
				if reason := b.pc.closeReason(); reason != nil {
					b.failed[i] = b.lostError(reason)
				} else {
					b.failed[i] = ErrNacked
				}
			}
			return true
		case r, ok := <-returns:
			if !ok {
				returns = nil // channel closed: dc is done too
				continue
			}
			b.matchReturn(&r)
		case <-ctx.Done():
			return false
		}
	}
}

// abandon marks the unconfirmed messages [from, to) as failed with cause.
// Their confirmations may still arrive, which is why the channel is not
// reused.
func (b *batch) abandon(from, to int, cause error) {
	for i := from; i < to; i++ {
		if !b.dcs[i].Acked() {
			b.failed[i] = cause
		}
	}
	for i := to; i < len(b.msgs); i++ {
		b.failed[i] = cause
	}
}

// matchReturn finds the message a basic.return is about. The return carries
// no delivery tag, but returns arrive in publish order, so it is the first
// message after the previous return with the same routing key and body.
// (Two identical messages of a batch could only be told apart if a binding
// changed between them; either way the same bytes are reported.)
func (b *batch) matchReturn(r *amqp.Return) {
	if b.returned == nil {
		b.returned = make([]bool, len(b.msgs))
	}
	for i := b.lastReturned + 1; i < len(b.msgs); i++ {
		m := &b.msgs[i]
		if bytes.Equal(m.Body, r.Body) && amqptopology.RoutingKey(m) == r.RoutingKey {
			b.returned[i] = true
			b.lastReturned = i
			return
		}
	}
	b.t.cfg.Logger.Error("rabbitmq: broker returned a message that matches none of the batch",
		slog.String("routing_key", r.RoutingKey), slog.Int("reply_code", int(r.ReplyCode)), slog.String("reply_text", r.ReplyText))
}

func (b *batch) lostError(reason error) error {
	return fmt.Errorf("%w (%v)", ErrConnectionLost, reason)
}

// result builds the PublishError, or nil when everything was confirmed.
func (b *batch) result() error {
	var failed, unroutableIdx []int
	var causes []error
	seen := make(map[string]bool)
	var unroutable []string
	drop := b.t.cfg.DropUnroutable
	for i, err := range b.failed {
		// Only a broadcast is dropped (no replica bound yet, as in
		// django-cqrs). A message aimed at one queue (a retry, a dead letter,
		// a one-queue SYNC) that cannot reach it is reported: its queue is
		// missing or not bound, and the caller must keep the event.
		if b.returned != nil && b.returned[i] && err == nil && drop && b.msgs[i].Queue == "" {
			b.t.cfg.Logger.Debug("rabbitmq: unroutable message dropped", slog.String("routing_key", amqptopology.RoutingKey(&b.msgs[i])))
			continue
		}
		if b.returned != nil && b.returned[i] && err == nil {
			// Accepted by the broker, routed nowhere: sending it again
			// cannot help, so it is not a failure.
			unroutableIdx = append(unroutableIdx, i)
			if k := amqptopology.RoutingKey(&b.msgs[i]); !slices.Contains(unroutable, k) {
				unroutable = append(unroutable, k)
			}
			continue
		}
		if err == nil {
			continue
		}
		failed = append(failed, i)
		if s := err.Error(); !seen[s] {
			seen[s] = true
			causes = append(causes, err)
		}
	}
	if len(failed) == 0 && len(unroutableIdx) == 0 {
		return nil
	}
	if failed == nil {
		failed = []int{} // known: nothing failed
	}
	if len(unroutable) > 0 {
		keys := unroutable
		more := ""
		if len(keys) > 5 {
			keys, more = keys[:5], fmt.Sprintf(" and %d more", len(unroutable)-5)
		}
		causes = append([]error{fmt.Errorf("%w (routing keys %q%s): declare and bind a replica queue, e.g. by subscribing", ErrUnroutable, keys, more)}, causes...)
	}
	return &transport.PublishError{Failed: failed, Unroutable: unroutableIdx, Err: errors.Join(causes...)}
}

func allIndexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

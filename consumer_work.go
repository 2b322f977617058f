package cqrsync

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/backoff"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// decode turns a delivery into an item, or settles it at once: a body that
// cannot be decoded, an unregistered model and an expired event go to the
// dead-letter queue, since no retry can help them.
func (c *Consumer) decode(ctx context.Context, sub transport.Subscription, d transport.Delivery) (item, bool) {
	it := item{sub: sub, d: d}
	p, err := DecodePayload(d.Body, c.cfg.Now())
	if err != nil {
		c.deadLetter(ctx, it, err)
		return it, false
	}
	p.Queue = d.Queue
	p.Headers = d.Headers
	if d.Headers[HeaderBroadcast] != "" {
		p.Queue = "" // a copy of a broadcast event (a retry): not an operator's one-queue SYNC
	}
	if c.caps.DelayedRedelivery {
		// Retried by NackDelay: the body still says how often it was
		// retried before; the broker counts the rest. Redeliveries after
		// a Close or a lost connection were no retries and do not count.
		p.Retries += d.Delays
	}
	it.p = p
	if _, ok := c.cfg.Replica.Model(p.CQRSID); !ok {
		c.deadLetter(ctx, it, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: fmt.Errorf("%w: this replica has not registered it", ErrUnknownModel)})
		return it, false
	}
	if p.Expired(c.cfg.Now()) {
		c.deadLetter(ctx, it, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: fmt.Errorf("expired at %s", FormatExpires(p.Expires))})
		return it, false
	}
	return it, true
}

// work is one worker's loop: take what is waiting, up to a batch, apply it.
// It returns when in is closed and drained, or workCtx ends.
func (c *Consumer) work(ctx, workCtx context.Context, in <-chan item, sched *scheduler) {
	batch := make([]item, 0, c.cfg.BatchSize)
	var linger *time.Timer
	for first := range in {
		batch = append(batch[:0], first)
		var deadline <-chan time.Time // nil: do not wait
		if c.cfg.BatchWait > 0 {
			if linger == nil {
				linger = time.NewTimer(c.cfg.BatchWait)
			} else {
				linger.Reset(c.cfg.BatchWait)
			}
			deadline = linger.C
		}
	fill:
		for len(batch) < c.cfg.BatchSize {
			select {
			case it, ok := <-in:
				if !ok {
					break fill
				}
				batch = append(batch, it)
				continue
			default:
			}
			if deadline == nil {
				break
			}
			select {
			case it, ok := <-in:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			case <-deadline:
				deadline = nil
				break fill
			case <-workCtx.Done():
				break fill
			}
		}
		if linger != nil && deadline != nil {
			linger.Stop() // Go 1.23+: a stopped timer's channel is drained, Reset is safe
		}
		if workCtx.Err() != nil {
			continue // past the shutdown timeout: leave it to the queue
		}
		c.process(ctx, workCtx, batch, sched)
	}
}

// process applies a batch in one transaction; when an event is at fault, it
// applies the events one by one to isolate it.
func (c *Consumer) process(ctx, workCtx context.Context, batch []item, sched *scheduler) {
	err := c.retryInfra(ctx, workCtx, func() error { return c.applyTx(workCtx, batch) })
	if err == nil {
		c.ack(workCtx, batch)
		return
	}
	if IsRetryable(err) || workCtx.Err() != nil {
		return // stopping while the database is down, or cut short: the queue keeps the batch
	}
	if len(batch) > 1 {
		c.cfg.Logger.DebugContext(ctx, "cqrsync: batch failed, applying its events one by one", slog.Int("events", len(batch)), slog.Any("error", err))
	}
	for i := range batch {
		one := batch[i : i+1]
		err := c.retryInfra(ctx, workCtx, func() error { return c.applyTx(workCtx, one) })
		switch {
		case err == nil:
			c.ack(workCtx, one)
		case IsRetryable(err) || workCtx.Err() != nil:
			return
		default:
			c.fail(ctx, batch[i], err, sched)
		}
	}
}

// retryInfra runs fn until it succeeds, fails for a reason other than the
// infrastructure, or the consumer stops; it waits with backoff in between,
// which pauses this worker while the database is down.
func (c *Consumer) retryInfra(ctx, workCtx context.Context, fn func() error) error {
	retry := backoff.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	for {
		err := fn()
		if err == nil || !IsRetryable(err) || ctx.Err() != nil || workCtx.Err() != nil {
			return err
		}
		wait := retry.Next()
		msg := "cqrsync: replica database unavailable, retrying the batch"
		if lockConflict(err) {
			msg = "cqrsync: retrying the batch after a deadlock or lock wait timeout in the replica database"
		}
		c.cfg.Logger.WarnContext(ctx, msg, slog.Any("error", err), slog.Duration("retry_in", wait))
		if !backoff.Sleep(ctx, wait) {
			return err
		}
	}
}

// applyTx applies items in one transaction on the replica's database and
// commits it. On a pipelining driver (sqldialect/pgxv5) a batch of SAVEs
// costs two round trips to PostgreSQL instead of four.
func (c *Consumer) applyTx(ctx context.Context, items []item) error {
	ps := make([]*Payload, len(items))
	for i, it := range items {
		ps[i] = it.p
		it.p.gap = false // set again by this apply
	}
	var applied, dropped int64
	started := false
	var outs []Outcome
	var began time.Time
	var ends []func(string, error)
	if c.cfg.Hooks != nil {
		began = time.Now()
		if t, ok := c.cfg.Hooks.(hook.Tracer); ok {
			ends = make([]func(string, error), len(ps))
			for i, p := range ps {
				ends[i] = t.TraceApply(ctx, p.CQRSID, hook.MapCarrier(p.Headers))
			}
		}
	}
	err := c.cfg.Replica.DB().RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		started = true
		var err error
		outs, err = c.cfg.Replica.ApplyBatch(ctx, ex, ps)
		if err != nil {
			return err
		}
		for _, out := range outs {
			if out.Applied() {
				applied++
			} else {
				dropped++
			}
		}
		return nil
	})
	if c.cfg.Hooks != nil {
		c.observeApply(ctx, ps, outs, time.Since(began), err)
		for i, end := range ends {
			if err != nil {
				end("", err)
			} else {
				end(outs[i].String(), nil)
			}
		}
	}
	switch {
	case err == nil:
	case !started: // no connection: the database is down
		return infraError{err}
	default:
		// The batch's own error with any rollback failure, or the commit's
		// (IsRetryable tells the database's failures by their type).
		return err
	}
	c.applied.Add(applied)
	c.dropped.Add(dropped)
	c.cfg.Replica.Applied(ps) // wake the WaitFor calls of these keys
	for _, p := range ps {
		if p.gap {
			c.askResend(ctx, p, "gap")
		}
	}
	return nil
}

// observeApply reports a batch to the hooks: its outcomes per model, and,
// when it committed, each applied event's lag.
func (c *Consumer) observeApply(ctx context.Context, ps []*Payload, outs []Outcome, took time.Duration, err error) {
	var models []hook.Apply
	for i, p := range ps {
		k := slices.IndexFunc(models, func(a hook.Apply) bool { return a.CQRSID == p.CQRSID })
		if k < 0 {
			models = append(models, hook.Apply{CQRSID: p.CQRSID, Duration: took, Err: err})
			k = len(models) - 1
		}
		a := &models[k]
		a.Size++
		if err != nil {
			continue
		}
		switch out := outs[i]; {
		case out.Applied():
			a.Applied++
		case out == OutcomeStale:
			a.Stale++
		case out == OutcomeDuplicate:
			a.Duplicate++
		case out == OutcomeTombstoned:
			a.Tombstoned++
		default: // OutcomeNoop, OutcomeIgnored
			a.Ignored++
		}
	}
	for _, a := range models {
		c.cfg.Hooks.OnApply(ctx, a)
	}
	if err != nil {
		return
	}
	now := c.cfg.Now()
	for i, p := range ps {
		if !outs[i].Applied() {
			continue
		}
		if updated, err := p.Updated(); err == nil {
			c.cfg.Hooks.OnLag(ctx, hook.Lag{CQRSID: p.CQRSID, Lag: now.Sub(updated)})
		}
	}
}

// ack settles items after their commit. An ack that fails (the connection
// was lost) is only logged: the broker delivers those events again, and the
// revision guard drops them as duplicates.
func (c *Consumer) ack(ctx context.Context, items []item) {
	bySub := map[transport.Subscription][]uint64{}
	for _, it := range items {
		bySub[it.sub] = append(bySub[it.sub], it.d.ID)
	}
	for sub, ids := range bySub {
		if err := sub.Ack(ctx, ids...); err != nil {
			c.cfg.Logger.WarnContext(ctx, "cqrsync: ack failed; the events will be redelivered and dropped as duplicates", slog.Int("events", len(ids)), slog.Any("error", err))
		}
	}
}

// fail applies the retry policy to an event that could not be applied.
func (c *Consumer) fail(ctx context.Context, it item, err error, sched *scheduler) {
	pol := c.cfg.Retry
	if m, ok := c.cfg.Replica.Model(it.p.CQRSID); ok && m.Retry != nil {
		pol = m.Retry.withDefaults()
	}
	attrs := []any{slog.String("cqrs_id", it.p.CQRSID), slog.Any("pk", it.p.InstancePK), slog.String("correlation_id", it.p.CorrelationID),
		slog.Int("retries", it.p.Retries), slog.Any("error", err)}
	if it.p.Retries < pol.MaxRetries && (pol.ShouldRetry == nil || pol.ShouldRetry(err)) {
		c.cfg.Logger.WarnContext(ctx, "cqrsync: event failed, will retry", attrs...)
		delay := pol.Delay(it.p.Retries + 1)
		if c.cfg.Hooks != nil {
			c.cfg.Hooks.OnRetry(ctx, hook.Retry{CQRSID: it.p.CQRSID, Attempt: it.p.Retries + 1, Delay: delay, Reason: err})
		}
		if c.caps.DelayedRedelivery && c.nackDelay(ctx, it, delay) {
			return
		}
		sched.add(it, c.cfg.Now().Add(delay), err)
		return
	}
	c.cfg.Logger.ErrorContext(ctx, "cqrsync: event failed, moving it to the dead-letter queue", attrs...)
	c.deadLetter(ctx, it, err)
}

// deadLetter publishes the event to the dead-letter queue and then
// acknowledges the original. If the publish fails, the original goes back
// to the queue, so nothing is lost.
func (c *Consumer) deadLetter(ctx context.Context, it item, reason error) {
	body := it.d.Body
	cqrsID := it.d.CQRSID
	if it.p != nil {
		// Re-encode as django-cqrs does: same keys, expires normalised.
		if b, err := it.p.AppendJSON(nil); err == nil {
			body = b
		}
		cqrsID = it.p.CQRSID
	}
	// Into the dead-letter queue by its name, not by cqrs.<dlq>.<cqrs_id>:
	// nothing binds that key for a cqrs_id this replica does not register,
	// and an unroutable dead letter would come back for ever.
	msg := transport.Message{
		CQRSID: cqrsID, Queue: c.cfg.DeadLetterQueue, IntoQueue: true, Body: body,
		Headers: deadLetterHeaders(it, reason, c.cfg.Now()),
	}
	if c.cfg.DeadLetterTTL > 0 {
		msg.Expiration = c.cfg.DeadLetterTTL
	}
	c.cfg.Logger.WarnContext(ctx, "cqrsync: dead-lettering event", slog.String("cqrs_id", cqrsID), slog.String("queue", c.cfg.DeadLetterQueue), slog.String("reason", reason.Error()))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.cfg.Publisher.Publish(pctx, []transport.Message{msg}); err != nil {
		c.cfg.Logger.ErrorContext(ctx, "cqrsync: dead-letter publish failed; returning the event to the queue in a second", slog.Any("error", err), slog.Duration("retry_in", deadLetterRetryDelay))
		c.laterNacks.add(ctx, c.cfg.Logger, it)
		return
	}
	c.deadLettered.Add(1)
	if it.p != nil {
		c.askResend(ctx, it.p, "dead letter")
	}
	if c.cfg.Hooks != nil {
		c.cfg.Hooks.OnDeadLetter(ctx, hook.DeadLetter{CQRSID: cqrsID, Reason: reason})
	}
	if err := it.sub.Ack(pctx, it.d.ID); err != nil {
		c.cfg.Logger.WarnContext(ctx, "cqrsync: ack of a dead-lettered event failed; it may be dead-lettered twice", slog.Any("error", err))
	}
}

// deadLetterHeaders are the headers of it's dead letter: the event's own
// (trace context, correlation ID), the broadcast mark, the reason and the
// time.
func deadLetterHeaders(it item, reason error, now time.Time) map[string]string {
	h := broadcastHeaders(it.p, maps.Clone(it.d.Headers))
	if h == nil {
		h = make(map[string]string, 2)
	}
	h[HeaderDeadLetterReason] = errtext.Truncate(reason.Error(), 1000)
	h[HeaderDeadLetteredAt] = now.UTC().Format(time.RFC3339Nano)
	return h
}

// deadLetterRetryDelay is how long an event whose dead-letter publish failed
// stays unacknowledged before it goes back to the queue: long enough not to
// spin on a broker that refuses, short enough to try again soon.
const deadLetterRetryDelay = time.Second

// nackTimers returns events to their queue after deadLetterRetryDelay, each
// on a timer of its own, so that the goroutine that failed to dead-letter one
// (the dispatch loop, a worker) goes on with the others at once.
type nackTimers struct {
	mu      sync.Mutex
	pending map[*time.Timer]struct{}
	stopped bool
}

// add nacks it (requeue) after deadLetterRetryDelay, unless stop was called
// first.
func (n *nackTimers) add(ctx context.Context, logger *slog.Logger, it item) {
	n.mu.Lock()
	defer n.mu.Unlock() // held until t is recorded: the callback locks first
	if n.stopped {
		return // the subscription's Close returns the event to the queue
	}
	if n.pending == nil {
		n.pending = make(map[*time.Timer]struct{})
	}
	var t *time.Timer
	t = time.AfterFunc(deadLetterRetryDelay, func() {
		n.mu.Lock()
		_, live := n.pending[t]
		delete(n.pending, t)
		n.mu.Unlock()
		if !live {
			return
		}
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := it.sub.Nack(nctx, true, it.d.ID); err != nil {
			logger.WarnContext(ctx, "cqrsync: nack failed; the broker will redeliver the event", slog.Any("error", err))
		}
	})
	n.pending[t] = struct{}{}
}

// start accepts nacks again, for a consumer started again after a stop.
func (n *nackTimers) start() {
	n.mu.Lock()
	n.stopped = false
	n.mu.Unlock()
}

// stop cancels the nacks still waiting and refuses new ones: the events stay
// unsettled, and the subscriptions' Close returns them to the queue.
func (n *nackTimers) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopped = true
	for t := range n.pending {
		t.Stop()
		delete(n.pending, t)
	}
}

// nackDelay hands the retry delay of it to the broker, which delivers the
// event again after delay (Capabilities.DelayedRedelivery), and reports
// whether it did; if not, the caller keeps the delay in memory.
func (c *Consumer) nackDelay(ctx context.Context, it item, delay time.Duration) bool {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := it.sub.NackDelay(pctx, delay, it.d.ID); errors.Is(err, transport.ErrClosed) {
		// The subscription ended: the broker has taken the event back and
		// delivers it again, so a retry held here would be a duplicate.
		c.cfg.Logger.DebugContext(ctx, "cqrsync: subscription ended before the retry delay was handed over; the broker delivers the event again", slog.Any("error", err))
		return true
	} else if err != nil {
		c.cfg.Logger.WarnContext(ctx, "cqrsync: the broker did not take the retry delay; waiting in memory instead", slog.Any("error", err))
		return false
	}
	c.retried.Add(1)
	return true
}

// requeue publishes the event again to this replica's own queue with
// retries+1 and then acknowledges the original: the event lives in the
// broker at every moment, so a crash loses nothing.
func (c *Consumer) requeue(ctx context.Context, it item) {
	p := *it.p
	p.Retries++
	body, err := p.AppendJSON(nil)
	if err != nil {
		c.deadLetter(ctx, it, err)
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// The headers travel on with the event: its trace context and
	// correlation ID must reach the handler on the retry too.
	msg := transport.Message{CQRSID: p.CQRSID, Queue: c.cfg.Queue, Body: body, Headers: broadcastHeaders(it.p, maps.Clone(it.d.Headers))}
	if err := c.cfg.Publisher.Publish(pctx, []transport.Message{msg}); err != nil {
		c.cfg.Logger.ErrorContext(ctx, "cqrsync: retry publish failed; returning the event to the queue", slog.Any("error", err))
		if err := it.sub.Nack(pctx, true, it.d.ID); err != nil {
			c.cfg.Logger.WarnContext(ctx, "cqrsync: nack failed; the broker will redeliver the event", slog.Any("error", err))
		}
		return
	}
	c.retried.Add(1)
	if err := it.sub.Ack(pctx, it.d.ID); err != nil {
		c.cfg.Logger.WarnContext(ctx, "cqrsync: ack of a retried event failed; it may be applied twice (dropped by revision)", slog.Any("error", err))
	}
}

// purgeLoop forgets expired tombstones now and then.
func (c *Consumer) purgeLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.PurgeInterval)
	defer t.Stop()
	for {
		n, err := c.cfg.Replica.PurgeTombstones(ctx, c.cfg.Replica.DB().Pool())
		switch {
		case err != nil && ctx.Err() == nil:
			c.cfg.Logger.WarnContext(ctx, "cqrsync: purging tombstones failed", slog.Any("error", err))
		case n > 0:
			c.cfg.Logger.InfoContext(ctx, "cqrsync: purged expired tombstones", slog.Int64("count", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scheduler holds events waiting for a retry, unacknowledged, in a bounded
// heap ordered by due time.
type scheduler struct {
	c    *Consumer
	mu   sync.Mutex
	h    delayHeap
	wake chan struct{}
}

type delayed struct {
	it  item
	due time.Time
}

type delayHeap []delayed

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newScheduler(c *Consumer) *scheduler {
	return &scheduler{c: c, wake: make(chan struct{}, 1)}
}

// add schedules a retry. When the heap is full, the event due soonest is
// retried at once to make room. The retry of an event whose subscription
// was lost is dropped: the broker delivers the event again.
func (s *scheduler) add(it item, due time.Time, _ error) {
	var overflow []delayed
	s.mu.Lock()
	if ended(it) { // checked under s.mu: forget runs after lost is closed
		s.mu.Unlock()
		return
	}
	heap.Push(&s.h, delayed{it: it, due: due})
	for s.h.Len() > s.c.cfg.MaxDelayed {
		overflow = append(overflow, heap.Pop(&s.h).(delayed))
	}
	s.mu.Unlock()
	for _, d := range overflow {
		if !ended(d.it) {
			s.c.requeue(context.Background(), d.it)
		}
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// forget drops the retries of the subscription whose lost channel this is:
// the broker delivers those events again, so a retry of them would be a
// duplicate.
func (s *scheduler) forget(lost <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.h[:0]
	for _, d := range s.h {
		if d.it.lost != lost {
			kept = append(kept, d)
		}
	}
	clear(s.h[len(kept):])
	s.h = kept
	heap.Init(&s.h)
}

// ended reports whether it's subscription was lost.
func ended(it item) bool {
	select {
	case <-it.lost:
		return true
	default:
		return false
	}
}

// run requeues events as they fall due, until ctx ends. Events still
// waiting then are left unacknowledged: the transport returns them to the
// queue when the subscription closes.
func (s *scheduler) run(ctx context.Context) {
	for {
		s.mu.Lock()
		var next time.Duration = time.Hour
		var due []delayed
		now := s.c.cfg.Now()
		for s.h.Len() > 0 && !s.h[0].due.After(now) {
			due = append(due, heap.Pop(&s.h).(delayed))
		}
		if s.h.Len() > 0 {
			next = s.h[0].due.Sub(now)
		}
		s.mu.Unlock()
		for _, d := range due {
			if !ended(d.it) { // lost after it was popped: the broker has it
				s.c.requeue(ctx, d.it)
			}
		}
		if len(due) > 0 {
			continue
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

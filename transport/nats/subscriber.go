package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	nats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrsync/cqrsync/internal/backoff"
	"github.com/cqrsync/cqrsync/transport"
)

// Subscribe registers params.Queue as a replica queue and its dead-letter
// queue as a dead-letter queue, creates (or updates) the queue's durable
// pull consumers, one per partition, filtered on the partition's subjects,
// with explicit acks, [Config.AckWait] and MaxAckPending = Prefetch, and
// starts pulling the partitions this subscription holds the lease of (see
// the package documentation). It returns once the consumers exist: a
// message published after that is kept for the queue.
//
// The returned subscription hands out the messages of its partitions that
// are for the queue (a broadcast for one of params.CQRSIDs, or a message
// aimed at the queue), and acks the others (another queue's direct
// messages, other models) without handing them out. An expired message
// ([transport.Message.Expiration]) is acked and dropped. It never has more
// than Prefetch deliveries unsettled. A lost connection does not end it: the
// client reconnects and pulling resumes. It ends on Close, when ctx ends,
// or when its consumers are deleted (Err says so); its unsettled deliveries
// are then nacked back to the stream and its leases released.
func (t *Transport) Subscribe(ctx context.Context, params *transport.SubscribeParams) (transport.Subscription, error) {
	if params == nil {
		return nil, errors.New("nats: Subscribe: params is nil: pass the queue name and CQRS IDs")
	}
	p := params.WithDefaults()
	p.CQRSIDs = slices.Clone(p.CQRSIDs)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if t.isClosed() {
		return nil, fmt.Errorf("nats: subscribe: %w", transport.ErrClosed)
	}
	setupCtx, cancelSetup := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSetup()
	if err := t.register(setupCtx, p.Queue, kindReplica); err != nil {
		return nil, fmt.Errorf("nats: subscribe to queue %q: %w", p.Queue, err)
	}
	if err := t.register(setupCtx, p.DeadLetterQueue, kindDead); err != nil {
		return nil, fmt.Errorf("nats: subscribe to queue %q: %w", p.Queue, err)
	}
	c := t.cfg
	cons := make([]jetstream.Consumer, c.Partitions)
	for k := range c.Partitions {
		var err error
		if cons[k], err = t.consumer(setupCtx, &p, k); err != nil {
			return nil, fmt.Errorf("nats: subscribe to queue %q: consumer of partition %d: %w", p.Queue, k, err)
		}
	}
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	life, cancel := context.WithCancel(ctx)
	s := &subscription{
		t:      t,
		p:      p,
		ids:    make(map[string]bool, len(p.CQRSIDs)),
		member: hex.EncodeToString(idb[:]),
		log:    c.Logger.With(slog.String("transport", "nats"), slog.String("queue", p.Queue)),
		out:    make(chan transport.Delivery),
		sem:    make(chan struct{}, p.Prefetch),
		kick:   make(chan struct{}, 1),
		cancel: cancel,
		done:   make(chan struct{}),
		held:   make(map[uint64]*held),
		parts:  make([]*part, c.Partitions),
	}
	for _, id := range p.CQRSIDs {
		s.ids[id] = true
	}
	for k := range c.Partitions {
		s.parts[k] = &part{k: k, cons: cons[k]}
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("nats: subscribe: %w", transport.ErrClosed)
	}
	t.subs[s] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	go s.run(life)
	return s, nil
}

// consumer opens the durable consumer of p's partition k, creating it when
// it is missing and updating it only when its settings differ: an update
// on a 2.9 server, even an identical one, confuses the redelivery of the
// messages it holds.
func (t *Transport) consumer(ctx context.Context, p *transport.SubscribeParams, k int) (jetstream.Consumer, error) {
	c := t.cfg
	cc := jetstream.ConsumerConfig{
		Durable:       durableName(p.Queue, k, c.Partitions),
		Description:   "cqrsync replica queue " + p.Queue,
		FilterSubject: partitionFilter(c.Exchange, k),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxAckPending: p.Prefetch,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	cons, err := t.main.Consumer(ctx, cc.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return t.main.CreateOrUpdateConsumer(ctx, cc)
	case err != nil:
		return nil, err
	}
	got := cons.CachedInfo().Config
	if got.AckWait == cc.AckWait && got.MaxAckPending == cc.MaxAckPending && got.FilterSubject == cc.FilterSubject {
		return cons, nil
	}
	return t.main.UpdateConsumer(ctx, cc)
}

// kick makes every subscription of queue look at the leases now (one of
// them released a partition).
func (t *Transport) kick(queue string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.subs {
		if s.p.Queue == queue {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	}
}

// subscription implements transport.Subscription.
type subscription struct {
	t      *Transport
	p      transport.SubscribeParams
	ids    map[string]bool
	member string
	log    *slog.Logger
	out    chan transport.Delivery
	sem    chan struct{} // one slot per unsettled delivery: the prefetch window
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned

	slot    int    // member slot held, -1 for none
	slotRev uint64 // its revision

	mu      sync.Mutex
	nextID  uint64
	held    map[uint64]*held // handed out, not settled
	parts   []*part
	closing bool
	ended   bool
	err     error
}

// part is one partition as a subscription sees it.
type part struct {
	k    int
	cons jetstream.Consumer

	// Owned only by the run goroutine.
	rev       uint64 // lease revision; 0 when the lease is not held
	releasing bool   // stopped pulling; the lease goes once outstanding is 0
	stop      context.CancelFunc
	pulled    chan struct{}   // closed when the puller returned
	leftover  []jetstream.Msg // pulled, never handed out: nacked by reap or shutdown

	outstanding int // handed out, unsettled; guarded by subscription.mu
}

// held is a delivery handed out and not yet settled.
type held struct {
	msg    jetstream.Msg
	part   *part
	seq    uint64
	delays int
	// touched is when the server last heard of it: its delivery, or the
	// last InProgress (guarded by subscription.mu).
	touched time.Time
}

// run keeps the member slot and the leases, and starts and stops the
// partitions' pullers, until ctx ends; then it returns every unsettled
// delivery and releases the leases.
func (s *subscription) run(ctx context.Context) {
	defer s.t.wg.Done()
	progressed := make(chan struct{})
	go func() {
		defer close(progressed)
		s.keepInProgress(ctx)
	}()
	s.slot = -1
	tick := time.NewTicker(s.t.cfg.LeaseTTL / 3)
	defer tick.Stop()
	for {
		s.balance(ctx)
		select {
		case <-ctx.Done():
			<-progressed // no InProgress races the naks of shutdown
			s.shutdown()
			return
		case <-tick.C:
		case <-s.kick:
		}
	}
}

// progressEvery is how often a held delivery tells the server it is still
// being worked on: a third of AckWait, so that one lost InProgress does
// not let it be redelivered.
func (s *subscription) progressEvery() time.Duration { return s.t.cfg.AckWait / 3 }

// keepInProgress, until ctx ends, tells the server about every delivery
// held unsettled for progressEvery (a slow apply, a database outage the
// consumer waits out), so that JetStream does not deliver it again after
// AckWait while it is held: a second copy would be applied twice and fill
// the prefetch window.
func (s *subscription) keepInProgress(ctx context.Context) {
	every := s.progressEvery()
	tick := time.NewTicker(max(every/2, 10*time.Millisecond))
	defer tick.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due = due[:0]
			s.mu.Lock()
			for _, h := range s.held {
				if now.Sub(h.touched) >= every {
					h.touched = now
					due = append(due, h.msg)
				}
			}
			s.mu.Unlock()
			for _, m := range due {
				_ = m.InProgress() // settled meanwhile: the server ignores it
			}
		}
	}
}

// opCtx bounds one key-value operation of the lease loop.
func (s *subscription) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(s.t.cfg.LeaseTTL/3, 200*time.Millisecond))
}

func (s *subscription) memberKey(i int) string { return "m." + s.p.Queue + "." + strconv.Itoa(i) }
func (s *subscription) leaseKey(k int) string  { return "l." + s.p.Queue + "." + strconv.Itoa(k) }

// balance renews the member slot and the leases, and moves this
// subscription's partitions towards its share: with n live members, the
// member of rank r (by slot) pulls the partitions k with k mod n == r. A
// partition is taken only through its lease (a key created when absent), so
// two members never pull one partition at once, even while they disagree on
// the shares; a partition given up is released only once its deliveries are
// settled, so that its next owner does not overtake them.
func (s *subscription) balance(ctx context.Context) {
	kv := s.t.leases
	P := s.t.cfg.Partitions
	// The member slot: renew it, or claim the lowest free one.
	if s.slot >= 0 {
		octx, cancel := s.opCtx(ctx)
		rev, err := kv.Update(octx, s.memberKey(s.slot), []byte(s.member), s.slotRev)
		cancel()
		switch {
		case err == nil:
			s.slotRev = rev
		case isWrongRevision(err):
			s.log.Warn("nats: member slot lost (expired while unrenewed); claiming another", slog.Int("slot", s.slot))
			s.slot = -1
		}
	}
	// Live members by slot.
	live := make([]bool, P)
	n := 0
	doubt := false // a slot could not be read: change nothing but renewals
	for i := range P {
		octx, cancel := s.opCtx(ctx)
		e, err := kv.Get(octx, s.memberKey(i))
		cancel()
		switch {
		case err == nil:
			live[i] = i == s.slot || string(e.Value()) != s.member
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			doubt = true
		}
		if live[i] {
			n++
		}
	}
	if doubt {
		for _, pt := range s.parts {
			s.reap(pt)
			if pt.rev != 0 {
				s.renew(ctx, pt)
			}
		}
		return
	}
	if s.slot < 0 {
		for i := range P {
			if live[i] {
				continue
			}
			octx, cancel := s.opCtx(ctx)
			rev, err := kv.Create(octx, s.memberKey(i), []byte(s.member))
			cancel()
			if err == nil {
				s.slot, s.slotRev, live[i] = i, rev, true
				n++
				break
			}
		}
	}
	rank := -1
	if s.slot >= 0 {
		rank = 0
		for i := range s.slot {
			if live[i] {
				rank++
			}
		}
	}
	for _, pt := range s.parts {
		s.reap(pt)
		want := rank >= 0 && n > 0 && pt.k%n == rank
		switch {
		case pt.rev != 0 && pt.releasing:
			s.mu.Lock()
			settled := pt.outstanding == 0
			s.mu.Unlock()
			if settled && pt.pulled == nil {
				s.release(ctx, pt)
				continue
			}
			s.renew(ctx, pt)
		case pt.rev != 0 && !want:
			s.stopAsync(pt)
			pt.releasing = true
			s.renew(ctx, pt)
		case pt.rev != 0:
			s.renew(ctx, pt)
		case want && pt.pulled == nil:
			octx, cancel := s.opCtx(ctx)
			rev, err := kv.Create(octx, s.leaseKey(pt.k), []byte(s.member))
			cancel()
			if err == nil {
				pt.rev = rev
				s.startPulling(ctx, pt)
			}
		}
	}
}

// renew extends pt's lease; when another member holds it now, pt is given
// up at once.
func (s *subscription) renew(ctx context.Context, pt *part) {
	octx, cancel := s.opCtx(ctx)
	rev, err := s.t.leases.Update(octx, s.leaseKey(pt.k), []byte(s.member), pt.rev)
	cancel()
	switch {
	case err == nil:
		pt.rev = rev
	case isWrongRevision(err):
		s.log.Warn("nats: partition lease lost (expired while unrenewed); stopped pulling it", slog.Int("partition", pt.k))
		s.stopAsync(pt)
		pt.rev, pt.releasing = 0, false
	}
	// Other errors (a lost connection): try again at the next tick; the
	// lease lasts three of them.
}

// release deletes pt's lease, if it is still ours, and wakes the other
// subscriptions of the queue in this process.
func (s *subscription) release(ctx context.Context, pt *part) {
	octx, cancel := s.opCtx(ctx)
	_ = s.t.leases.Delete(octx, s.leaseKey(pt.k), jetstream.LastRevision(pt.rev))
	cancel()
	pt.rev, pt.releasing = 0, false
	s.t.kick(s.p.Queue)
}

func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}

// startPulling starts pt's puller.
func (s *subscription) startPulling(ctx context.Context, pt *part) {
	pctx, stop := context.WithCancel(ctx)
	pt.stop = stop
	pt.pulled = make(chan struct{})
	go s.pull(pctx, pt, pt.pulled)
}

// stopAsync tells pt's puller to stop; reap finishes the job once it
// has. The lease loop never waits for a puller (up to PullWait), which
// would let its leases expire.
func (s *subscription) stopAsync(pt *part) {
	if pt.stop != nil {
		pt.stop()
		pt.stop = nil
	}
}

// reap, once pt's stopped puller has returned, makes sure the server saw
// its pull request go and nacks back what it had not handed out.
func (s *subscription) reap(pt *part) {
	if pt.stop != nil || pt.pulled == nil {
		return
	}
	select {
	case <-pt.pulled:
	default:
		return
	}
	pt.pulled = nil
	s.flush()
	s.nakLeftover(pt)
}

// flush waits (up to 2 s) until the server has processed what this
// connection sent.
func (s *subscription) flush() {
	if !s.t.nc.IsConnected() {
		return // nothing reaches the server; the leases expire
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.t.nc.FlushWithContext(ctx)
}

// haltPulling stops pt's puller, waits for it, and makes sure the server
// saw its pull request's subscription go: a message nacked while the
// server still holds the pull request would be redelivered into it and
// lost until AckWait.
func (s *subscription) haltPulling(pt *part) {
	s.stopAsync(pt)
	if pt.pulled == nil {
		return
	}
	<-pt.pulled
	pt.pulled = nil
	s.flush()
}

// nakLeftover nacks the messages pt's stopped puller had not handed out.
func (s *subscription) nakLeftover(pt *part) {
	for _, m := range pt.leftover {
		_ = m.Nak()
	}
	pt.leftover = nil
}

// pull hands out pt's messages until ctx ends. It pulls with Fetch
// requests that expire after [Config.PullWait], and lets the last one end
// before it returns: a 2.9 server keeps delivering into a pull request
// whose subscriber went away, and a message nacked then would be lost
// until AckWait. What it pulled and did not hand out is kept in
// pt.leftover, to be nacked once the request is over.
func (s *subscription) pull(ctx context.Context, pt *part, done chan struct{}) {
	defer func() {
		close(done)
		select { // the lease loop reaps it now
		case s.kick <- struct{}{}:
		default:
		}
	}()
	most := min(s.p.Prefetch, s.t.cfg.PullBatch)
	for ctx.Err() == nil {
		// Ask for no more than the prefetch window has room for: a message
		// pulled waits in the client, its AckWait running, until a slot
		// frees.
		n := max(1, min(most, cap(s.sem)-len(s.sem)))
		batch, err := pt.cons.Fetch(n, jetstream.FetchMaxWait(s.t.cfg.PullWait))
		if err != nil {
			if s.consumerGone(err) {
				return
			}
			s.log.Warn("nats: pulling partition failed; retrying", slog.Int("partition", pt.k), slog.Any("error", err))
			backoff.Sleep(ctx, s.t.cfg.ReconnectWait)
			continue
		}
		for m := range batch.Messages() {
			if ctx.Err() != nil || !s.handle(ctx, pt, m) {
				pt.leftover = append(pt.leftover, m)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			if s.consumerGone(err) {
				return
			}
			s.log.Warn("nats: pull interrupted; resuming", slog.Int("partition", pt.k), slog.Any("error", err))
			backoff.Sleep(ctx, s.t.cfg.ReconnectWait)
		}
	}
}

// consumerGone ends the subscription when err says its consumer was
// deleted, and reports so.
func (s *subscription) consumerGone(err error) bool {
	if !errors.Is(err, jetstream.ErrConsumerDeleted) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = fmt.Errorf("nats: queue %q: its consumer is gone (deleted?): %w; subscribe again to recreate it", s.p.Queue, err)
	}
	s.mu.Unlock()
	s.cancel()
	return true
}

// handle hands m out, or acks it when it is not for this queue or expired.
// It returns false when ctx ended before m was handed out.
func (s *subscription) handle(ctx context.Context, pt *part, m jetstream.Msg) bool {
	ps, ok := parseEventSubject(s.t.cfg.Exchange, m.Subject())
	headers, into, expires := inHeaders(m.Headers())
	switch {
	case !ok:
	case ps.queue == "" && s.ids[ps.cqrsID]:
	case ps.queue == s.p.Queue && (s.ids[ps.cqrsID] || into):
	default:
		_ = m.Ack() // not for this queue
		return true
	}
	if !ok {
		s.log.Warn("nats: message with a subject cqrsync does not publish; acked and dropped", slog.String("subject", m.Subject()))
		_ = m.Ack()
		return true
	}
	if !expires.IsZero() && !time.Now().Before(expires) {
		_ = m.Ack() // expired while it waited
		return true
	}
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Ack()
		return true
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	h := &held{msg: m, part: pt, seq: meta.Sequence.Stream, touched: time.Now()}
	if meta.NumDelivered > 1 {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if e, err := s.t.retries.Get(octx, s.retryKey(h.seq)); err == nil {
			h.delays, _ = strconv.Atoi(string(e.Value()))
		}
		cancel()
	}
	d := transport.Delivery{
		Message: transport.Message{
			CQRSID:  ps.cqrsID,
			Queue:   ps.queue,
			Body:    m.Data(),
			Headers: headers,
		},
		Redelivered: meta.NumDelivered > 1,
		Attempt:     int(meta.NumDelivered),
		Delays:      h.delays,
	}
	s.mu.Lock()
	s.nextID++
	d.ID = s.nextID
	s.held[d.ID] = h
	pt.outstanding++
	s.mu.Unlock()
	select {
	case s.out <- d:
		return true
	case <-ctx.Done():
		return s.take(d.ID) == nil // taken by a settlement meanwhile: handed out
	}
}

func (s *subscription) retryKey(seq uint64) string {
	return "r." + s.p.Queue + "." + strconv.FormatUint(seq, 10)
}

// take removes a held delivery, freeing its prefetch slot; nil when id is
// not held.
func (s *subscription) take(id uint64) *held {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeLocked(id)
}

func (s *subscription) takeLocked(id uint64) *held {
	h, ok := s.held[id]
	if !ok {
		return nil
	}
	delete(s.held, id)
	h.part.outstanding--
	<-s.sem
	return h
}

// shutdown stops the pullers, nacks every unsettled delivery back and
// releases the leases and the member slot.
func (s *subscription) shutdown() {
	for _, pt := range s.parts {
		s.stopAsync(pt) // all at once: each waits for its pull request
	}
	for _, pt := range s.parts {
		s.haltPulling(pt)
	}
	s.mu.Lock()
	s.ended = true
	ids := make([]uint64, 0, len(s.held))
	for id := range s.held {
		ids = append(ids, id)
	}
	slices.Sort(ids) // nak in delivery order: JetStream redelivers in nak order
	for _, id := range ids {
		_ = s.takeLocked(id).msg.Nak()
	}
	s.mu.Unlock()
	for _, pt := range s.parts {
		s.nakLeftover(pt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !s.t.nc.IsConnected() {
		cancel() // the leases expire by themselves after LeaseTTL
	}
	for _, pt := range s.parts {
		if pt.rev != 0 {
			s.release(ctx, pt)
		}
	}
	if s.slot >= 0 {
		_ = s.t.leases.Delete(ctx, s.memberKey(s.slot), jetstream.LastRevision(s.slotRev))
		s.t.kick(s.p.Queue)
	}
	s.t.mu.Lock()
	delete(s.t.subs, s)
	s.t.mu.Unlock()
	close(s.out)
	close(s.done)
}

// Deliveries returns the channel of incoming messages; it closes when the
// subscription ends.
func (s *subscription) Deliveries() <-chan transport.Delivery { return s.out }

// Err returns why the deliveries channel closed: nil after Close or a
// cancelled context, or the queue's consumer being gone.
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops the subscription: its unsettled deliveries are nacked back to
// the stream (delivered again at once, to whichever subscription pulls
// their partition next) and its partitions released. Idempotent.
func (s *subscription) Close() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	<-s.done
	return nil
}

// settle takes ids out of the held set and applies fn to each.
func (s *subscription) settle(op string, ids []uint64, fn func(h *held) error) error {
	if len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.ended || s.closing {
		s.mu.Unlock()
		return fmt.Errorf("nats: %s: %w (its unsettled deliveries went back to the stream)", op, transport.ErrClosed)
	}
	hs := make([]*held, 0, len(ids))
	var unknown []uint64
	for _, id := range ids {
		if h := s.takeLocked(id); h != nil {
			hs = append(hs, h)
		} else {
			unknown = append(unknown, id)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, h := range hs {
		if err := fn(h); err != nil {
			errs = append(errs, err)
		}
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("unknown or already settled delivery IDs %v", unknown))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nats: %s: %w", op, err)
	}
	return nil
}

// Ack acknowledges deliveries (one ack each, not waited for: at-least-once,
// a lost ack means a redelivery after AckWait).
func (s *subscription) Ack(ctx context.Context, ids ...uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nats: ack: %w", err)
	}
	return s.settle("ack", ids, func(h *held) error {
		err := h.msg.Ack()
		if h.delays > 0 {
			_ = s.t.retries.Delete(ctx, s.retryKey(h.seq))
		}
		return err
	})
}

// Nack with requeue naks deliveries (JetStream delivers them again at once,
// the messages behind them go on); without, it acks them, so they are
// dropped.
func (s *subscription) Nack(ctx context.Context, requeue bool, ids ...uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nats: nack: %w", err)
	}
	return s.settle("nack", ids, func(h *held) error {
		if requeue {
			return h.msg.Nak()
		}
		if h.delays > 0 {
			_ = s.t.retries.Delete(ctx, s.retryKey(h.seq))
		}
		return h.msg.Ack()
	})
}

// NackDelay naks deliveries with a delay kept by the server
// (NakWithDelay), after counting the delay in the retries bucket, from
// which the redelivery reads [transport.Delivery.Delays].
func (s *subscription) NackDelay(ctx context.Context, delay time.Duration, ids ...uint64) error {
	if delay <= 0 {
		return s.Nack(ctx, true, ids...)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nats: nack with delay: %w", err)
	}
	return s.settle("nack with delay", ids, func(h *held) error {
		if _, err := s.t.retries.Put(ctx, s.retryKey(h.seq), []byte(strconv.Itoa(h.delays+1))); err != nil {
			// Not counted: nak without the delay's count rather than hold
			// the message; its Delays will be one short.
			s.log.Warn("nats: could not count a delayed redelivery", slog.Any("error", err))
		}
		return h.msg.NakWithDelay(delay)
	})
}

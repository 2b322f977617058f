package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/amqptopology"
)

// Errors the memory transport returns besides [transport.ErrClosed].
var (
	// ErrConnectionLost is the [transport.Subscription.Err] of every
	// subscription ended by [Broker.CutConnections].
	ErrConnectionLost = errors.New("memory: connection lost")

	// ErrUnknownDelivery is returned (wrapped) by Ack and Nack for a delivery
	// ID that the subscription never handed out or that was already settled.
	ErrUnknownDelivery = errors.New("memory: unknown or already settled delivery ID")

	// ErrQueueNotFound is returned (wrapped) by ScanDeadLetters and
	// PurgeDeadLetters for a queue that was never declared, as RabbitMQ
	// answers NOT_FOUND: check the name, or subscribe (or DeclareQueue) first.
	ErrQueueNotFound = errors.New("memory: queue not found")
)

// Config configures a [Broker]. The zero value (or a nil *Config) is a
// well-behaved broker with no faults.
type Config struct {
	// Logger receives the broker's diagnostics: dropped (unroutable or
	// expired) messages at Debug, cut connections and the chaos seed at Info.
	// Default: a logger that discards everything.
	Logger *slog.Logger

	// Now is the clock that ages messages for [transport.Message.Expiration].
	// Default time.Now. Tests inject a fake clock to expire messages without
	// sleeping; the broker reads it only for messages with an Expiration
	// (and in QueueLen and the dead-letter methods), with its lock held, so
	// it must not call the Broker.
	Now func() time.Time

	// FailPublish, when not nil, is called once for every message of every
	// Publish, in order, from the publishing goroutine, with no broker lock
	// held (it may call the Broker). A non-nil error rejects that message: it
	// is not enqueued anywhere, the other messages of the batch are, and
	// Publish returns a *[transport.PublishError] whose Failed lists the
	// rejected indexes and whose Err is the first error returned. It must be
	// safe for concurrent use when several goroutines publish. Default nil:
	// every publish succeeds.
	FailPublish func(m *transport.Message) error

	// DelayedRedelivery makes the broker declare
	// Capabilities.DelayedRedelivery and honour Subscription.NackDelay.
	// Default false: like RabbitMQ, which has no delayed redelivery, so
	// that the demo and the tests run the consumer's in-memory retry delay
	// unless they ask for the broker's.
	DelayedRedelivery bool

	// Chaos, when not nil, duplicates and reorders messages as they are
	// enqueued. Default nil: every queue is exactly FIFO, nothing is
	// duplicated.
	Chaos *Chaos
}

// Chaos makes the broker misbehave the ways real brokers and at-least-once
// publishers do, so that consumers can prove they converge anyway.
//
// The decisions come from a random source seeded with Seed and drawn a fixed
// number of times per enqueued message, whatever the state of the queue. So
// the same seed and the same sequence of publishes (one publishing goroutine,
// same messages) make the same decisions, and a failing run can be replayed
// from the seed it logged.
type Chaos struct {
	// DuplicateRate is the probability, in [0, 1], that a message enqueued on
	// a queue is enqueued a second time, as if its publisher had sent it
	// twice (the copy is placed like any other message, so ReorderRate
	// applies to it too). Default 0.
	DuplicateRate float64

	// ReorderRate is the probability, in [0, 1], that a message enqueued on a
	// queue overtakes some of the messages ready in it (between 1 and
	// ReorderWindow of them) instead of joining the back. It has no effect on
	// an empty queue. Default 0.
	ReorderRate float64

	// ReorderWindow is the most ready messages a reordered message overtakes.
	// Default 8.
	ReorderWindow int

	// Seed seeds the random source. Default 0 picks a random seed, which is
	// logged at Info level and returned by [Broker.ChaosSeed].
	Seed int64
}

// WithDefaults returns a copy of c (which may be nil) with zero fields
// filled in. Chaos, when set, is copied too, so the broker never shares it.
func (c *Config) WithDefaults() *Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Chaos != nil {
		ch := *out.Chaos
		if ch.ReorderWindow <= 0 {
			ch.ReorderWindow = 8
		}
		if ch.Seed == 0 {
			ch.Seed = int64(rand.Uint64() >> 1)
			if ch.Seed == 0 {
				ch.Seed = 1
			}
		}
		out.Chaos = &ch
	}
	return &out
}

func (c *Config) validate() error {
	var errs []error
	if ch := c.Chaos; ch != nil {
		if !(ch.DuplicateRate >= 0 && ch.DuplicateRate <= 1) {
			errs = append(errs, fmt.Errorf("memory: Config.Chaos.DuplicateRate is %v: use a probability between 0 and 1", ch.DuplicateRate))
		}
		if !(ch.ReorderRate >= 0 && ch.ReorderRate <= 1) {
			errs = append(errs, fmt.Errorf("memory: Config.Chaos.ReorderRate is %v: use a probability between 0 and 1", ch.ReorderRate))
		}
	}
	return errors.Join(errs...)
}

// Broker is an in-memory message broker with django-cqrs's RabbitMQ
// topology: durable queues bound to routing keys, competing consumers,
// prefetch windows, manual acknowledgements, dead-letter queues and message
// expiration. See the package documentation for what it does and does not
// imitate.
//
// A Broker is safe for concurrent use. It owns no goroutine of its own (each
// open subscription has one) and needs no Close: it is garbage once its
// subscriptions are closed and it is unreachable.
type Broker struct {
	logger      *slog.Logger
	now         func() time.Time
	failPublish func(m *transport.Message) error
	chaos       *Chaos

	delayedRedelivery bool

	mu       sync.Mutex
	rng      *rand.Rand                 // chaos decisions; under mu
	seq      uint64                     // last entry sequence number; under mu
	queues   map[string]*queue          // under mu
	bindings map[string][]*queue        // routing key -> bound queues; under mu
	subs     map[*subscription]struct{} // open subscriptions; under mu
	touched  []*queue                   // scratch for publish; under mu
}

// NewBroker returns an empty broker. cfg may be nil. NewBroker panics if cfg
// is invalid (a probability outside [0, 1]): that is a bug in the test that
// builds it.
func NewBroker(cfg *Config) *Broker {
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		panic(err)
	}
	b := &Broker{
		logger:      c.Logger,
		now:         c.Now,
		failPublish: c.FailPublish,
		chaos:       c.Chaos,

		delayedRedelivery: c.DelayedRedelivery,
		queues:            make(map[string]*queue),
		bindings:          make(map[string][]*queue),
		subs:              make(map[*subscription]struct{}),
	}
	if c.Chaos != nil {
		b.rng = rand.New(rand.NewPCG(uint64(c.Chaos.Seed), 0x63717273796e63)) //nolint:gosec // test chaos, not security
		b.logger.Info("memory: chaos enabled", "seed", c.Chaos.Seed,
			"duplicate_rate", c.Chaos.DuplicateRate, "reorder_rate", c.Chaos.ReorderRate, "reorder_window", c.Chaos.ReorderWindow)
	}
	return b
}

// Compile-time checks that the broker's views implement the contract.
var (
	_ transport.DeadLetters  = (*Broker)(nil)
	_ transport.Publisher    = (*publisher)(nil)
	_ transport.Subscriber   = (*subscriber)(nil)
	_ transport.Subscription = (*subscription)(nil)
)

// Capabilities declares what the broker can do, as RabbitMQ does except
// that an unroutable message is dropped, not reported: per-queue order
// (unless Config.Chaos duplicates or reorders), durable queues (for the
// broker's life), expiration on the broker's clock, prefetch windows,
// IntoQueue, per-message requeue, and browsing and removing dead letters.
// Delayed redelivery only with Config.DelayedRedelivery. Safe for
// concurrent use.
func (b *Broker) Capabilities() transport.Capabilities {
	return transport.Capabilities{
		DelayedRedelivery: b.delayedRedelivery,
		PerQueueOrder:     b.chaos == nil,
		Durable:           true,
		Expiration:        true,
		Prefetch:          true,
		DirectToQueue:     true,
		NackRequeue:       true,
		DeadLetterBrowse:  true,
		DeadLetterRemove:  true,
	}
}

// Publisher returns a new publisher on the broker. Each publisher can be
// closed independently; closing it does not affect the broker.
func (b *Broker) Publisher() transport.Publisher { return &publisher{b: b} }

// Subscriber returns a new subscriber on the broker. Closing it ends the
// subscriptions it opened; queues and their messages stay on the broker.
func (b *Broker) Subscriber() transport.Subscriber {
	return &subscriber{b: b, subs: make(map[*subscription]struct{})}
}

// ChaosSeed returns the seed of the broker's chaos source (the configured
// one, or the one picked at random), or 0 when Config.Chaos is nil.
func (b *Broker) ChaosSeed() int64 {
	if b.chaos == nil {
		return 0
	}
	return b.chaos.Seed
}

// DeclareQueue declares queue and its dead-letter queue
// [transport.DeadLetterQueue](queue), and binds them for every CQRS ID
// exactly as Subscribe does, without consuming. Messages routed to the queue
// from then on are kept until a subscription takes them. Declaring again is
// harmless. It returns the validation error of the names, if any.
func (b *Broker) DeclareQueue(queue string, cqrsIDs ...string) error {
	p := transport.SubscribeParams{Queue: queue, CQRSIDs: cqrsIDs}.WithDefaults()
	if err := p.Validate(); err != nil {
		return fmt.Errorf("memory: declare queue: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.declareLocked(p.Queue, p.DeadLetterQueue, p.CQRSIDs)
	return nil
}

// Queues returns the names of every declared queue (replica and dead-letter
// queues), sorted.
func (b *Broker) Queues() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.queues))
	for name := range b.queues {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// QueueLen returns how many messages queue holds: those ready for delivery
// plus those delivered and not yet settled (RabbitMQ's "messages" =
// messages_ready + messages_unacknowledged). So a queue is fully processed
// when QueueLen is 0. Expired messages at the head of the queue are
// discarded first, as a consumer would find them; an expired message behind
// a live one still counts until it reaches the head. An undeclared queue has
// length 0.
func (b *Broker) QueueLen(queue string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil {
		return 0
	}
	q.dropExpiredHead(b)
	return q.readyN + q.unacked + q.delayed
}

// CutConnections simulates a broker restart or a dropped network for
// consumers: every open subscription ends at once, its deliveries channel is
// closed (before CutConnections returns) and its Err returns
// [ErrConnectionLost]; its unsettled messages go back to the front of their
// queues, marked redelivered. Acks and nacks of the lost deliveries fail with
// [transport.ErrClosed]. Queues, bindings and messages survive, subscribers
// can subscribe again at once, and publishers are unaffected (they
// "reconnect" transparently; use Config.FailPublish to make publishes fail).
// It returns the number of subscriptions it ended.
func (b *Broker) CutConnections() int {
	b.mu.Lock()
	cut := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		cut = append(cut, s)
	}
	for _, s := range cut {
		s.endLocked(ErrConnectionLost)
	}
	b.mu.Unlock()
	for _, s := range cut {
		<-s.exited
	}
	b.logger.Info("memory: connections cut", "subscriptions", len(cut))
	return len(cut)
}

// BrowseDeadLetters implements [transport.DeadLetterBrowser]: it is
// ScanDeadLetters keeping every message, so it visits what that visits. fn
// runs with no broker lock held.
func (b *Broker) BrowseDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *transport.Message) error) error {
	_, err := b.ScanDeadLetters(ctx, dlq, transport.KeepAll(fn))
	return err
}

// ScanDeadLetters implements [transport.DeadLetterRemover]. It visits the messages
// ready in dlq when the scan starts, in queue order; messages a consumer of
// dlq holds unacknowledged, or that expired, are not visited. fn runs with no
// broker lock held, so it may publish to the broker. The returned error wraps
// fn's error, ctx's error, or [ErrQueueNotFound].
func (b *Broker) ScanDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *transport.Message) (transport.DeadLetterAction, error)) (int, error) {
	b.mu.Lock()
	q := b.queues[dlq]
	if q == nil {
		b.mu.Unlock()
		return 0, fmt.Errorf("memory: scan dead letters of %q: %w", dlq, ErrQueueNotFound)
	}
	q.dropExpiredHead(b)
	now := b.now()
	snap := make([]*entry, 0, q.readyN)
	for i := range q.ready.len() {
		if e := q.ready.at(i); e.state == stateReady && !e.expired(now) {
			snap = append(snap, e)
		}
	}
	b.mu.Unlock()

	removed := 0
	defer func() {
		b.mu.Lock()
		q.compact()
		b.mu.Unlock()
	}()
	for _, e := range snap {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("memory: scan dead letters of %q: %w", dlq, context.Cause(ctx))
		}
		b.mu.Lock()
		live := e.state == stateReady
		b.mu.Unlock()
		if !live {
			continue // taken by a consumer of the dead-letter queue meanwhile
		}
		m := e.delivery(0, false, 0, 0).Message
		action, err := fn(ctx, &m)
		if err != nil {
			return removed, fmt.Errorf("memory: scan dead letters of %q: %w", dlq, err)
		}
		if action != transport.DeadLetterRemove {
			continue
		}
		b.mu.Lock()
		if e.state == stateReady {
			e.state = stateGone
			q.readyN--
			removed++
		}
		b.mu.Unlock()
	}
	return removed, nil
}

// PurgeDeadLetters implements [transport.DeadLetterRemover]. Like RabbitMQ's
// queue.purge it removes the ready messages of dlq (not those a consumer
// holds unacknowledged) and returns how many, not counting expired ones. The
// error wraps [ErrQueueNotFound] for an undeclared queue.
func (b *Broker) PurgeDeadLetters(ctx context.Context, dlq string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memory: purge dead letters of %q: %w", dlq, context.Cause(ctx))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[dlq]
	if q == nil {
		return 0, fmt.Errorf("memory: purge dead letters of %q: %w", dlq, ErrQueueNotFound)
	}
	now := b.now()
	n := 0
	for i := range q.ready.len() {
		e := q.ready.at(i)
		if e.state != stateReady {
			continue
		}
		if !e.expired(now) {
			n++
		}
		e.state = stateGone
	}
	q.ready.reset()
	q.readyN = 0
	return n, nil
}

// declareLocked declares the queue and dead-letter queue and binds them as
// django-cqrs does: queue <- <cqrs_id> and cqrs.<queue>.<cqrs_id>,
// dlq <- cqrs.<dlq>.<cqrs_id>. Bindings are never removed.
func (b *Broker) declareLocked(queue, dlq string, cqrsIDs []string) *queue {
	q := b.queueLocked(queue)
	d := b.queueLocked(dlq)
	for _, id := range cqrsIDs {
		b.bindLocked(id, q)
		b.bindLocked(amqptopology.DirectRoutingKey(queue, id), q)
		b.bindLocked(amqptopology.DirectRoutingKey(dlq, id), d)
	}
	return q
}

func (b *Broker) queueLocked(name string) *queue {
	q := b.queues[name]
	if q == nil {
		q = &queue{name: name}
		b.queues[name] = q
	}
	return q
}

func (b *Broker) bindLocked(key string, q *queue) {
	if !slices.Contains(b.bindings[key], q) {
		b.bindings[key] = append(b.bindings[key], q)
	}
}

// enqueueLocked appends a message to q, applying chaos. m's Body and Headers
// must already be the broker's own copies.
func (b *Broker) enqueueLocked(q *queue, m *transport.Message, now time.Time) {
	b.seq++
	b.placeLocked(q, &entry{msg: *m, seq: b.seq, enqueued: now})
	if b.chaos == nil {
		return
	}
	// Always draw, so that the stream of decisions depends only on the
	// sequence of enqueues, not on how far consumers have drained the queue.
	if b.rng.Float64() < b.chaos.DuplicateRate {
		b.seq++
		b.placeLocked(q, &entry{msg: *m, seq: b.seq, enqueued: now})
	}
}

func (b *Broker) placeLocked(q *queue, e *entry) {
	q.readyN++
	if b.chaos == nil {
		q.ready.pushBack(e)
		return
	}
	reorder := b.rng.Float64() < b.chaos.ReorderRate
	k := 1 + b.rng.IntN(b.chaos.ReorderWindow)
	if n := q.ready.len(); reorder && n > 0 {
		q.ready.insert(n-min(k, n), e)
		return
	}
	q.ready.pushBack(e)
}

// requeueLocked puts unsettled entries back at the front of q, in their
// original order and marked redelivered, as RabbitMQ puts a requeued
// message back near its original position.
func (b *Broker) requeueLocked(q *queue, es []*entry) {
	slices.SortFunc(es, func(x, y *entry) int {
		switch {
		case x.seq < y.seq:
			return -1
		case x.seq > y.seq:
			return 1
		}
		return 0
	})
	for _, e := range es {
		e.state = stateReady
		e.redelivered = true
	}
	q.ready.pushFront(es)
	q.readyN += len(es)
	q.unacked -= len(es)
}

// delayLocked takes unsettled entries off q's books until delay has passed
// (real time), then puts them at the end of q's ready list, marked
// redelivered, and dispatches.
func (b *Broker) delayLocked(q *queue, es []*entry, delay time.Duration) {
	q.unacked -= len(es)
	q.delayed += len(es)
	for _, e := range es {
		e.state = stateDelayed
		e.delays++
	}
	time.AfterFunc(delay, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		q.delayed -= len(es)
		for _, e := range es {
			e.state = stateReady
			e.redelivered = true
			q.ready.pushBack(e)
		}
		q.readyN += len(es)
		b.dispatchLocked(q)
	})
}

// dispatchLocked hands ready messages of q to its consumers in round-robin
// order, each up to its prefetch window. It is called whenever messages
// become ready or a window opens.
func (b *Broker) dispatchLocked(q *queue) {
	n := len(q.consumers)
	for n > 0 && q.readyN > 0 {
		var c *subscription
		for i := range n {
			s := q.consumers[(q.rr+i)%n]
			if len(s.unacked) < s.prefetch {
				c = s
				q.rr = (q.rr + i + 1) % n
				break
			}
		}
		if c == nil {
			return // every window is full
		}
		e := q.popReady(b)
		if e == nil {
			return // only expired messages were left
		}
		c.deliverLocked(e)
	}
}

var _ transport.Inspector = (*Broker)(nil)

// Ping returns nil: the in-memory broker always answers.
func (b *Broker) Ping(context.Context) error { return nil }

// QueueDepth returns how many messages wait in queue ready for delivery
// (QueueLen also counts those delivered and not settled, and those waiting
// for a delayed redelivery). An undeclared queue returns an error wrapping
// transport.ErrQueueNotFound.
func (b *Broker) QueueDepth(_ context.Context, queue string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil {
		return 0, fmt.Errorf("memory: depth of queue %q: %w", queue, transport.ErrQueueNotFound)
	}
	q.dropExpiredHead(b)
	return q.readyN, nil
}

package cqrsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/backoff"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/internal/startstop"
	"github.com/cqrsync/cqrsync/transport"
)

// Defaults of [ConsumerConfig].
const (
	DefaultMaxRetries    = 30                  // django-cqrs's CQRS_MAX_RETRIES
	DefaultRetryDelay    = 2 * time.Second     // django-cqrs's CQRS_RETRY_DELAY
	DefaultDeadLetterTTL = 10 * 24 * time.Hour // django-cqrs's dead_message_ttl
	DefaultMaxDelayed    = 1000                // django-cqrs's delay_queue_max_size, per worker, within Prefetch/2
)

// HeaderDeadLetterReason is the transport header that says why a message
// was dead-lettered. django-cqrs ignores headers.
const HeaderDeadLetterReason = "x-cqrsync-reason"

// RetryPolicy decides what happens to an event the replica failed to apply.
type RetryPolicy struct {
	// MaxRetries is how many times an event is retried before it goes to
	// the dead-letter queue. Default DefaultMaxRetries; a negative value
	// means never retry.
	MaxRetries int
	// Delay returns how long to wait before retry number n (1 for the first
	// retry). Default: DefaultRetryDelay every time, as django-cqrs.
	// See ExponentialDelay.
	Delay func(n int) time.Duration
	// ShouldRetry, when set, sees the error; returning false sends the event
	// to the dead-letter queue at once.
	ShouldRetry func(err error) bool
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	p.MaxRetries = cmp.Or(p.MaxRetries, DefaultMaxRetries)
	if p.Delay == nil {
		p.Delay = func(int) time.Duration { return DefaultRetryDelay }
	}
	return p
}

// ExponentialDelay returns a retry delay that starts at base, doubles with
// every retry up to limit, and is spread by ±25% jitter so that failed
// events do not come back in step.
func ExponentialDelay(base, limit time.Duration) func(n int) time.Duration {
	return func(n int) time.Duration {
		d := base
		for i := 1; i < n && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
		return d - d/4 + rand.N(d/2+1)
	}
}

// ConsumerConfig configures a [Consumer].
type ConsumerConfig struct {
	// Replica applies the events, in transactions on its database (the
	// driver passed to NewReplica). Required. On the pgx driver
	// (sqldialect/pgxv5) each batch runs as a pipelined transaction, saving
	// two of its four round trips to PostgreSQL.
	Replica *Replica
	// Subscriber delivers the queue's messages. Required.
	Subscriber transport.Subscriber
	// Publisher sends retries and dead letters. Required.
	Publisher transport.Publisher
	// Queue is this replica service's queue. Required.
	Queue string
	// CQRSIDs limits the consumer to these models (django-cqrs's
	// cqrs_consume --cqrs-id). Default: every model of Replica.
	CQRSIDs []string
	// DeadLetterQueue is where events go that cannot be applied. Default
	// "dead_letter_<Queue>".
	DeadLetterQueue string
	// DeadLetterTTL is how long the broker keeps a dead letter. Default
	// DefaultDeadLetterTTL (10 days); NoExpiry keeps it forever; other
	// negative values are refused.
	DeadLetterTTL time.Duration
	// Workers is the number of events applied in parallel (django-cqrs's
	// cqrs_consume -w). Events for one (cqrs_id, pk) always go to the same
	// worker, in arrival order. Default 1.
	Workers int
	// BatchSize is the most events one worker applies in one database
	// transaction. Default 100.
	BatchSize int
	// BatchWait is how long a worker waits for more events when fewer than
	// BatchSize are at hand, before applying what it has. Zero (the
	// default) applies at once: lowest latency. A wait of a millisecond or
	// two trades that much latency for bigger batches (fewer commits) when
	// events trickle in faster than one per wait. A negative value is
	// refused.
	BatchWait time.Duration
	// Prefetch is the most unacknowledged events the transport hands out.
	// Default max(1001, 2 × Workers × BatchSize).
	Prefetch int
	// Retry is the default retry policy.
	Retry RetryPolicy
	// MaxDelayed bounds the events waiting for a retry; when it is full, the
	// one due soonest is retried at once (as django-cqrs): published again
	// to the queue with retries+1, and acknowledged. Those events stay
	// unacknowledged while they wait, so they count against Prefetch:
	// MaxDelayed may be at most Prefetch/2, which leaves the other half of
	// the window to the events behind a burst of failures. Default
	// DefaultMaxDelayed per worker, at most Prefetch/2.
	MaxDelayed int
	// PurgeInterval is how often expired tombstones are purged. Default 1 h;
	// a negative value is refused.
	PurgeInterval time.Duration
	// ShutdownTimeout bounds the work done after Stop: finishing the batches
	// in hand. Default 30 s; a negative value is refused.
	ShutdownTimeout time.Duration
	// Logger receives the consumer's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Hooks, when set, observes every batch applied, retry, dead letter and
	// each event's lag (see package hook). Nil costs nothing.
	Hooks hook.Hooks
	// NoResend turns self-healing off: by default, a SAVE that skips
	// revisions (stored n, event n+k, k > 1), a SAVE that creates a key past
	// revision 0, and a dead-lettered event make the consumer ask the
	// master to send the key again — only a cqrsync master that takes
	// resend requests (its events carry HeaderResendQueue), never a Django
	// service. See Resender.
	NoResend bool
	// ResendInterval is the least time between two requests for one key.
	// Default DefaultResendInterval; a negative value is refused.
	ResendInterval time.Duration
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c ConsumerConfig) WithDefaults() ConsumerConfig {
	c.DeadLetterQueue = cmp.Or(c.DeadLetterQueue, transport.DeadLetterQueue(c.Queue))
	c.DeadLetterTTL = cmp.Or(c.DeadLetterTTL, DefaultDeadLetterTTL)
	c.Workers = cmp.Or(c.Workers, 1)
	c.BatchSize = cmp.Or(c.BatchSize, 100)
	c.Prefetch = cmp.Or(c.Prefetch, max(1001, 2*c.Workers*c.BatchSize))
	c.Retry = c.Retry.withDefaults()
	c.MaxDelayed = cmp.Or(c.MaxDelayed, min(DefaultMaxDelayed*c.Workers, c.Prefetch/2))
	c.PurgeInterval = cmp.Or(c.PurgeInterval, time.Hour)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 30*time.Second)
	c.ResendInterval = cmp.Or(c.ResendInterval, DefaultResendInterval)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CQRSIDs == nil && c.Replica != nil {
		c.CQRSIDs = c.Replica.Models()
	}
	return c
}

func (c *ConsumerConfig) validate() error {
	var errs []error
	if c.Replica == nil {
		errs = append(errs, errors.New("cqrsync: ConsumerConfig.Replica is nil: create one with NewReplica and register models"))
	}
	if c.Subscriber == nil || c.Publisher == nil {
		errs = append(errs, errors.New("cqrsync: ConsumerConfig.Subscriber and Publisher are required: pass a transport's"))
	} else if caps := c.Subscriber.Capabilities(); !caps.NackRequeue || !caps.DirectToQueue {
		// Nack with requeue returns an event whose retry or dead-letter
		// publish failed; IntoQueue reaches the dead-letter queue for any
		// cqrs_id.
		errs = append(errs, fmt.Errorf("cqrsync: ConsumerConfig.Subscriber: the consumer needs Capabilities.NackRequeue and Capabilities.DirectToQueue, and this transport declares %+v: %w; use a transport that has both (rabbitmq, memory)", caps, transport.ErrNotSupported))
	}
	if !validName(c.Queue) {
		errs = append(errs, fmt.Errorf("cqrsync: ConsumerConfig.Queue %q: set the replica service's queue name (no '.', '*', '#')", c.Queue))
	}
	if c.Replica != nil {
		if len(c.CQRSIDs) == 0 {
			errs = append(errs, errors.New("cqrsync: the consumer has no models: register replica models first"))
		}
		for _, id := range c.CQRSIDs {
			if _, ok := c.Replica.Model(id); !ok {
				errs = append(errs, errtext.Errorf("cqrsync: ConsumerConfig.CQRSIDs: %w %q", ErrUnknownModel, id))
			}
		}
	}
	if c.Workers < 0 || c.BatchSize < 0 || c.Prefetch < 0 || c.MaxDelayed < 0 {
		errs = append(errs, errors.New("cqrsync: ConsumerConfig: Workers, BatchSize, Prefetch and MaxDelayed must not be negative: use 0 for the defaults"))
	} else if c.MaxDelayed == 0 {
		errs = append(errs, errtext.Errorf("cqrsync: ConsumerConfig: Prefetch %d leaves no room for an event waiting for its retry, so every retry would go back at once, without its delay: use a Prefetch of at least 2 (or 0 for the default)", c.Prefetch))
	} else if c.MaxDelayed > c.Prefetch/2 {
		errs = append(errs, errtext.Errorf("cqrsync: ConsumerConfig.MaxDelayed %d is more than half of Prefetch %d: events waiting for a retry would fill the window the other events need; lower MaxDelayed or raise Prefetch", c.MaxDelayed, c.Prefetch))
	}
	if c.DeadLetterTTL < 0 && c.DeadLetterTTL != NoExpiry {
		errs = append(errs, fmt.Errorf("cqrsync: ConsumerConfig.DeadLetterTTL is %v: use a positive TTL, 0 for the default %v or NoExpiry to keep dead letters forever", c.DeadLetterTTL, DefaultDeadLetterTTL))
	}
	errs = append(errs, negativeDurations("ConsumerConfig", []namedDuration{
		{"BatchWait", c.BatchWait, "0 applies at once"},
		{"PurgeInterval", c.PurgeInterval, "0 for the default 1h"},
		{"ResendInterval", c.ResendInterval, "0 for the default 1m"},
		{"ShutdownTimeout", c.ShutdownTimeout, "0 for the default 30s"},
	})...)
	return errors.Join(errs...)
}

// ConsumerStats counts what a consumer did since it was created.
type ConsumerStats struct {
	Received     int64 // deliveries taken from the transport
	Applied      int64 // events that changed a row
	Dropped      int64 // duplicates, stale events, events older than a delete
	Retried      int64 // events sent back to the queue for a retry
	DeadLettered int64 // events moved to the dead-letter queue
	ResendsAsked int64 // resend requests sent to masters (see ConsumerConfig.NoResend)
}

// Consumer applies a replica queue's events to the replica database.
//
// It takes deliveries from the transport and hands each to one of Workers
// workers, chosen by (cqrs_id, pk), so events for one row are applied in
// arrival order. A worker applies up to BatchSize events in one database
// transaction and acknowledges them only after the commit. If the
// transaction fails because the database is unavailable, the worker waits
// and tries the same batch again (consumption pauses; nothing is lost). If
// it fails because of an event, the batch is applied again one event at a
// time, so the others go through and only the event at fault follows the
// retry policy: it is published again to the queue after a delay with
// retries+1 (the delivery is acknowledged only after that publish), and once
// the retries are spent it goes to the dead-letter queue. On a transport
// that declares Capabilities.DelayedRedelivery the broker keeps the delay
// instead (Subscription.NackDelay), and the retries are counted from the
// delivery's Delays. Malformed bodies,
// unknown models and expired events go to the dead-letter queue at once,
// with the reason in the HeaderDeadLetterReason header. Dead letters go
// into the dead-letter queue by its name (transport.Message.IntoQueue), so
// one whose cqrs_id nothing binds there still gets there; if the broker
// refuses it, the event goes back to the queue a second later, on a timer
// of its own, while the consumer goes on. A failure never stops the
// consumer. The transport must declare Capabilities.NackRequeue and
// DirectToQueue; NewConsumer refuses one that does not.
type Consumer struct {
	cfg    ConsumerConfig
	runner startstop.Runner
	seed   maphash.Seed

	received, applied, dropped, retried, deadLettered atomic.Int64

	laterNacks nackTimers // events whose dead-letter publish failed

	resends      resendLimiter // when each key was last asked for
	resendsAsked atomic.Int64

	caps transport.Capabilities // the Subscriber's
}

// NewConsumer returns a consumer; Start runs it.
func NewConsumer(cfg *ConsumerConfig) (*Consumer, error) {
	if cfg == nil {
		cfg = &ConsumerConfig{}
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Consumer{cfg: c, seed: maphash.MakeSeed(), caps: c.Subscriber.Capabilities(), resends: resendLimiter{interval: c.ResendInterval}}, nil
}

// Start subscribes and consumes in the background until ctx ends or Stop is
// called. Started is closed once the subscription is in place.
func (c *Consumer) Start(ctx context.Context) error {
	return c.runner.Start(ctx, c.run)
}

// Started is closed once the consumer is subscribed (or has failed).
func (c *Consumer) Started() <-chan struct{} { return c.runner.Started() }

// Done is closed when the consumer has stopped.
func (c *Consumer) Done() <-chan struct{} { return c.runner.Done() }

// Stop stops taking deliveries, finishes the batches in hand (bounded by
// ShutdownTimeout), returns the rest to the queue, and waits.
func (c *Consumer) Stop() error { return c.runner.Stop() }

// Stats returns the consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Received: c.received.Load(), Applied: c.applied.Load(), Dropped: c.dropped.Load(),
		Retried: c.retried.Load(), DeadLettered: c.deadLettered.Load(), ResendsAsked: c.resendsAsked.Load(),
	}
}

// item is one delivery on its way through the consumer.
type item struct {
	sub transport.Subscription
	// lost is closed when sub's deliveries end: the broker has taken back
	// what sub left unsettled and delivers it again.
	lost <-chan struct{}
	d    transport.Delivery
	p    *Payload
}

func (c *Consumer) run(ctx context.Context, started func()) error {
	// While it runs, WaitFor calls rely on its batches, not on polling.
	c.cfg.Replica.waiters.consumers.Add(1)
	defer c.cfg.Replica.waiters.consumers.Add(-1)
	// Work in hand continues for up to ShutdownTimeout after a stop.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(c.cfg.ShutdownTimeout)
			defer t.Stop()
			select {
			case <-t.C:
				cancelWork()
			case <-workCtx.Done():
			}
		case <-workCtx.Done():
		}
	}()

	c.laterNacks.start()
	sched := newScheduler(c)
	var wg sync.WaitGroup
	workers := make([]chan item, c.cfg.Workers)
	for i := range workers {
		workers[i] = make(chan item, c.cfg.BatchSize)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx, workCtx, workers[i], sched)
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); sched.run(ctx) }()
	go func() { defer wg.Done(); c.purgeLoop(ctx) }()

	// Subscriptions outlive a stop until the workers have finished the
	// batches in hand, so those are acknowledged rather than redelivered;
	// what is still unsettled then goes back to the queue on Close.
	subCtx, cancelSubs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSubs()
	subs, err := c.dispatch(ctx, subCtx, started, workers, sched)
	for _, w := range workers {
		close(w)
	}
	wg.Wait()
	c.laterNacks.stop()
	for _, s := range subs {
		_ = s.Close()
	}
	return err
}

// dispatch subscribes (again after a transport failure, with subCtx) and
// routes deliveries to the workers until ctx ends. It returns the
// subscriptions it opened, for the caller to close once the workers are done.
// The retries sched holds for a subscription that was lost are dropped: the
// broker delivers those events again.
func (c *Consumer) dispatch(ctx, subCtx context.Context, started func(), workers []chan item, sched *scheduler) (subs []transport.Subscription, _ error) {
	retry := backoff.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for ctx.Err() == nil {
		sub, err := c.subscribe(ctx, subCtx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			wait := retry.Next()
			c.cfg.Logger.ErrorContext(ctx, "cqrsync: subscribe failed, retrying", slog.String("queue", c.cfg.Queue), slog.Any("error", err), slog.Duration("retry_in", wait))
			if !backoff.Sleep(ctx, wait) {
				break
			}
			continue
		}
		subs = append(subs, sub)
		started()
		retry.Reset()
		c.cfg.Logger.InfoContext(ctx, "cqrsync: consuming", slog.String("queue", c.cfg.Queue), slog.Any("cqrs_ids", c.cfg.CQRSIDs), slog.Int("workers", c.cfg.Workers))
		lost := make(chan struct{})
	recv:
		for {
			select {
			case <-ctx.Done():
				return subs, nil
			case d, ok := <-sub.Deliveries():
				if !ok {
					break recv
				}
				c.received.Add(1)
				it, ok := c.decode(ctx, sub, d)
				if !ok {
					continue
				}
				it.lost = lost
				w := workers[c.workerFor(it.p)]
				select {
				case w <- it:
				case <-ctx.Done():
					// Not handed over: back to the queue on Close.
					return subs, nil
				}
			}
		}
		close(lost)
		sched.forget(lost)
		if ctx.Err() != nil {
			break
		}
		c.cfg.Logger.WarnContext(ctx, "cqrsync: subscription lost, subscribing again", slog.String("queue", c.cfg.Queue), slog.Any("error", sub.Err()))
	}
	return subs, nil
}

// subscribe opens a subscription that lives for subCtx, but gives up
// waiting for it when ctx ends (a stop while the broker is unreachable
// must not wait for the broker): a subscription that arrives after that is
// closed at once, and the call itself returns when subCtx ends.
func (c *Consumer) subscribe(ctx, subCtx context.Context) (transport.Subscription, error) {
	type result struct {
		sub transport.Subscription
		err error
	}
	done := make(chan result, 1)
	go func() {
		sub, err := c.cfg.Subscriber.Subscribe(subCtx, &transport.SubscribeParams{
			Queue: c.cfg.Queue, CQRSIDs: c.cfg.CQRSIDs, DeadLetterQueue: c.cfg.DeadLetterQueue, Prefetch: c.cfg.Prefetch,
		})
		done <- result{sub, err}
	}()
	select {
	case r := <-done:
		return r.sub, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.sub != nil {
				_ = r.sub.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// workerFor picks the worker of an event's row, so that one row's events
// stay in arrival order.
func (c *Consumer) workerFor(p *Payload) int {
	if c.cfg.Workers == 1 {
		return 0
	}
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(p.CQRSID)
	h.WriteByte(0)
	h.WriteString(keyString(p.InstancePK))
	return int(h.Sum64() % uint64(c.cfg.Workers))
}

package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrsync/cqrsync/transport"
)

// Transport is a NATS connection with the JetStream streams, consumers and
// key-value buckets of one exchange (see the package documentation). It
// implements [transport.Publisher], [transport.Subscriber] and
// [transport.DeadLetters]; all its methods are safe for concurrent use. The
// connection reconnects by itself, forever, until Close.
type Transport struct {
	cfg *Config
	nc  *natsgo.Conn
	js  jetstream.JetStream

	main, dead              jetstream.Stream
	queues, leases, retries jetstream.KeyValue

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
	kinds  map[string]string // queue name -> kindReplica or kindDead, as registered

	wg sync.WaitGroup // subscriptions' goroutines
}

// Registry values of the queues bucket.
const (
	kindReplica = "replica"
	kindDead    = "dead"
)

// descPrefix starts the main stream's description, which records the
// partition count so that every client of the exchange agrees on it.
const descPrefix = "cqrsync events; partitions="

// New validates cfg (nil means all defaults), connects, and creates what is
// missing of the exchange's streams and buckets. A server that is down makes
// New fail; an existing stream with another partition count or another
// retention is refused with what to do. ctx bounds the whole setup (30 s
// when it has no deadline).
func New(ctx context.Context, cfg *Config) (*Transport, error) {
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	log := c.Logger.With(slog.String("transport", "nats"), slog.String("exchange", c.Exchange))
	nc, err := natsgo.Connect(c.URL,
		natsgo.Name(c.Name),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(c.ReconnectWait),
		natsgo.ReconnectJitter(c.ReconnectWait/4, c.ReconnectWait/4),
		natsgo.RetryOnFailedConnect(false),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil {
				log.Warn("nats: disconnected; reconnecting", slog.Any("error", err))
			}
		}),
		natsgo.ReconnectHandler(func(*natsgo.Conn) { log.Info("nats: reconnected") }),
	)
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w (is the server running with JetStream, -js?)", redactURL(c.URL), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	t := &Transport{cfg: c, nc: nc, js: js, subs: make(map[*subscription]struct{}), kinds: make(map[string]string)}
	if err := t.setup(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return t, nil
}

// setup creates or opens the streams and buckets.
func (t *Transport) setup(ctx context.Context) error {
	c := t.cfg
	var err error
	t.main, err = t.stream(ctx, jetstream.StreamConfig{
		Name:        c.Stream,
		Description: descPrefix + strconv.Itoa(c.Partitions),
		Subjects:    []string{c.Exchange + ".m.>"},
		Retention:   jetstream.InterestPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	})
	if err != nil {
		return err
	}
	t.dead, err = t.stream(ctx, jetstream.StreamConfig{
		Name:        c.Stream + "_dead_letters",
		Description: "cqrsync dead letters",
		Subjects:    []string{c.Exchange + ".dl.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	})
	if err != nil {
		return err
	}
	if t.queues, err = t.bucket(ctx, "_queues", 0); err != nil {
		return err
	}
	if t.leases, err = t.bucket(ctx, "_leases", c.LeaseTTL); err != nil {
		return err
	}
	t.retries, err = t.bucket(ctx, "_retries", c.RetryMemory)
	return err
}

// stream creates sc's stream, or opens it and checks that it is compatible.
func (t *Transport) stream(ctx context.Context, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := t.js.CreateStream(ctx, sc)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("nats: create stream %q: %w", sc.Name, err)
	}
	s, err = t.js.Stream(ctx, sc.Name)
	if err != nil {
		return nil, fmt.Errorf("nats: open stream %q: %w", sc.Name, err)
	}
	got := s.CachedInfo().Config
	switch {
	case got.Retention != sc.Retention:
		return nil, fmt.Errorf("nats: stream %q exists with retention %v, cqrsync needs %v: delete it or choose another Config.Stream", sc.Name, got.Retention, sc.Retention)
	case strings.HasPrefix(sc.Description, descPrefix) && got.Description != sc.Description:
		return nil, fmt.Errorf("nats: stream %q was created with %q, this client has Config.Partitions %d: every client of an exchange uses the same partition count", sc.Name, strings.TrimPrefix(got.Description, "cqrsync events; "), t.cfg.Partitions)
	}
	return s, nil
}

// bucket creates or opens the key-value bucket Stream+suffix.
func (t *Transport) bucket(ctx context.Context, suffix string, ttl time.Duration) (jetstream.KeyValue, error) {
	name := t.cfg.Stream + suffix
	kv, err := t.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, TTL: ttl, History: 1, Replicas: t.cfg.Replicas})
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketExists) && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("nats: create key-value bucket %q: %w", name, err)
	}
	kv, err = t.js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("nats: open key-value bucket %q: %w", name, err)
	}
	return kv, nil
}

// Capabilities declares what this transport does (see the package
// documentation): everything but unroutable reports, and per-queue order
// only with one partition. Safe for concurrent use.
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{
		PerQueueOrder:     t.cfg.Partitions == 1,
		Durable:           true,
		Expiration:        true,
		Prefetch:          true,
		ReportsUnroutable: false,
		DirectToQueue:     true,
		NackRequeue:       true,
		DelayedRedelivery: true,
		DeadLetterBrowse:  true,
		DeadLetterRemove:  true,
	}
}

// Conn returns the underlying NATS connection, for the tools and tests
// that need the server itself (the benchmark's raw pull rate).
func (t *Transport) Conn() *natsgo.Conn { return t.nc }

// Close ends every subscription (their unsettled deliveries are nacked back
// to the stream and their partitions released), flushes what is buffered
// and closes the connection. Later calls return [transport.ErrClosed]. It is
// idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { _ = s.Close() }) // each waits for its last pull request
	}
	wg.Wait()
	t.wg.Wait()
	if t.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = t.nc.FlushWithContext(ctx)
	}
	t.nc.Close()
	return nil
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// DeleteQueue deletes the durable consumers of a replica queue (every
// partition's) and its registration, or the dead letters of a dead-letter
// queue. Messages only that queue still needed leave the stream. For
// tests and operators retiring a replica.
func (t *Transport) DeleteQueue(ctx context.Context, queue string) error {
	kind, err := t.queueKind(ctx, queue)
	if err != nil {
		return err
	}
	var errs []error
	switch kind {
	case kindReplica:
		for k := range t.cfg.Partitions {
			if err := t.main.DeleteConsumer(ctx, durableName(queue, k, t.cfg.Partitions)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				errs = append(errs, err)
			}
		}
	case kindDead:
		if err := t.dead.Purge(ctx, jetstream.WithPurgeSubject(deadFilter(t.cfg.Exchange, queue))); err != nil {
			errs = append(errs, err)
		}
	default:
		return nil
	}
	if err := t.queues.Delete(ctx, queue); err != nil {
		errs = append(errs, err)
	}
	t.mu.Lock()
	delete(t.kinds, queue)
	t.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nats: delete queue %q: %w", queue, err)
	}
	return nil
}

// queueKind returns what queue was registered as ("" when it was not),
// from the cache or the registry bucket. Registrations never change kind,
// so found ones are cached; absent ones are asked again next time.
func (t *Transport) queueKind(ctx context.Context, queue string) (string, error) {
	t.mu.Lock()
	kind, ok := t.kinds[queue]
	t.mu.Unlock()
	if ok {
		return kind, nil
	}
	e, err := t.queues.Get(ctx, queue)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up queue %q: %w", queue, err)
	}
	kind = string(e.Value())
	t.mu.Lock()
	t.kinds[queue] = kind
	t.mu.Unlock()
	return kind, nil
}

// register records queue as kind in the registry, failing when it is
// registered as the other kind.
func (t *Transport) register(ctx context.Context, queue, kind string) error {
	got, err := t.queueKind(ctx, queue)
	if err != nil {
		return err
	}
	if got == "" {
		_, err := t.queues.Create(ctx, queue, []byte(kind))
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("register queue %q: %w", queue, err)
		}
		t.mu.Lock()
		delete(t.kinds, queue)
		t.mu.Unlock()
		if got, err = t.queueKind(ctx, queue); err != nil {
			return err
		}
	}
	if got != kind {
		return fmt.Errorf("queue %q is registered as a %s queue, not a %s queue: a replica queue and a dead-letter queue need different names", queue, got, kind)
	}
	return nil
}

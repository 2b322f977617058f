package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrsync/cqrsync/transport"
)

// Transport speaks cqrsync's transport contract over Kafka. It implements
// [transport.Publisher], [transport.Subscriber] and [transport.DeadLetters];
// all its methods are safe for concurrent use.
//
// It keeps one franz-go client for publishing and administration, and one
// more per subscription (a consumer group member) and per dead-letter scan.
// The clients reconnect by themselves.
type Transport struct {
	cfg *Config
	cl  *kgo.Client
	adm *kadm.Client

	topics sync.Map // topic name -> struct{}: topics known to exist

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
}

// Compile-time checks.
var (
	_ transport.Publisher   = (*Transport)(nil)
	_ transport.Subscriber  = (*Transport)(nil)
	_ transport.DeadLetters = (*Transport)(nil)
)

// New validates cfg and returns a transport. It asks the brokers for their
// metadata to check that they answer; the context bounds that request.
func New(ctx context.Context, cfg *Config) (*Transport, error) {
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	cl, err := c.newClient(kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	t := &Transport{cfg: c, cl: cl, adm: kadm.NewClient(cl), subs: make(map[*subscription]struct{})}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: no broker of %v answers: %w", c.Brokers, err)
	}
	return t, nil
}

// newClient opens a franz-go client on the configured brokers with the
// user's options and opts.
func (c *Config) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	all := make([]kgo.Opt, 0, len(c.ClientOptions)+len(opts)+1)
	all = append(all, kgo.SeedBrokers(c.Brokers...))
	all = append(all, c.ClientOptions...)
	all = append(all, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	return cl, nil
}

// Capabilities declares what the Kafka transport does; see the package
// documentation for how.
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{
		PerQueueOrder:     false, // one key's order, not a queue's: partitions are read in parallel
		Durable:           true,
		Expiration:        true,
		Prefetch:          true,
		ReportsUnroutable: false,
		DirectToQueue:     true,
		NackRequeue:       true, // a copy on the queue topic
		DelayedRedelivery: true, // a copy on the queue topic with its not-before
		DeadLetterBrowse:  true,
		DeadLetterRemove:  true, // tombstones on a compacted topic
	}
}

// Close ends every subscription (their unsettled deliveries are delivered
// again to the queue's next consumer) and closes the clients. Later calls
// return [transport.ErrClosed]. Close is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	wasClosed := t.closed
	t.closed = true
	subs := slices.Collect(maps.Keys(t.subs))
	t.mu.Unlock()
	if wasClosed {
		return nil
	}
	// Each Close commits and leaves its group: do them at once.
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { _ = s.Close() })
	}
	wg.Wait()
	t.cl.Close()
	return nil
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (t *Transport) closedErr(op string) error {
	return fmt.Errorf("kafka: %s: %w", op, transport.ErrClosed)
}

// ensureTopics creates the topics that do not exist yet with partitions
// partitions and configs.
func (t *Transport) ensureTopics(ctx context.Context, partitions int32, configs map[string]*string, topics ...string) error {
	var missing []string
	for _, tp := range topics {
		if _, ok := t.topics.Load(tp); !ok {
			missing = append(missing, tp)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	resps, err := t.adm.CreateTopics(ctx, partitions, t.cfg.ReplicationFactor, configs, missing...)
	if err != nil {
		return fmt.Errorf("kafka: create topics %v: %w", missing, err)
	}
	var errs []error
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("kafka: create topic %q: %w", r.Topic, r.Err))
			continue
		}
		t.topics.Store(r.Topic, struct{}{})
	}
	return errors.Join(errs...)
}

// exists reports whether topic exists, asking the brokers when this
// transport has not seen it yet.
func (t *Transport) exists(ctx context.Context, topic string) (bool, error) {
	if _, ok := t.topics.Load(topic); ok {
		return true, nil
	}
	details, err := t.adm.ListTopics(ctx, topic)
	if err != nil {
		return false, fmt.Errorf("kafka: look up topic %q: %w", topic, err)
	}
	d, ok := details[topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return false, nil
	}
	if d.Err != nil {
		return false, fmt.Errorf("kafka: look up topic %q: %w", topic, d.Err)
	}
	t.topics.Store(topic, struct{}{})
	return true, nil
}

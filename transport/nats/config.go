package nats

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// Defaults applied by [Config.WithDefaults].
const (
	// DefaultURL is the NATS server of a development machine.
	DefaultURL = "nats://127.0.0.1:4222"
	// DefaultExchange names the stream and is the first token of every
	// subject, as django-cqrs's exchange name.
	DefaultExchange = "cqrs"
	// DefaultPartitions is one partition: one subscription of a queue at a
	// time pulls it, the others stand by.
	DefaultPartitions = 1
	// DefaultAckWait is how long JetStream waits for the settlement of a
	// delivery before it delivers the message again.
	DefaultAckWait = 30 * time.Second
	// DefaultLeaseTTL is how long a partition's lease outlives its owner's
	// last renewal (renewed every third of it).
	DefaultLeaseTTL = 6 * time.Second
	// DefaultRetryMemory is how long the count of a message's delayed
	// redeliveries is remembered after its last NackDelay.
	DefaultRetryMemory = 7 * 24 * time.Hour
	// DefaultPullBatch bounds how many messages one pull request asks for.
	DefaultPullBatch = 500
	// maxPartitions bounds Config.Partitions: every partition is a durable
	// consumer per queue and two lease reads per renewal.
	maxPartitions = 256
)

// Config configures a [Transport]. The zero value connects to [DefaultURL];
// every field documents its default and unit. Publishers and subscribers of
// one exchange must agree on Exchange, Stream and Partitions (the stream
// records its partition count; [New] refuses a different one).
type Config struct {
	// URL is the server, "nats://[user:password@]host:port" (tls:// for TLS);
	// several URLs may be given separated by commas. Credentials never appear
	// in errors or logs. Default [DefaultURL].
	URL string

	// Exchange is the first token of every subject, as the RabbitMQ
	// exchange of django-cqrs: "<exchange>.m.<partition>.<cqrs_id>" for a
	// broadcast, "...<cqrs_id>.<queue>" for a message to one queue,
	// "<exchange>.dl.<dead-letter queue>.<cqrs_id>" for a dead letter. A
	// NATS subject token: no '.', '*', '>' or space. Default
	// [DefaultExchange].
	Exchange string

	// Stream is the JetStream stream of the exchange's events; the dead
	// letters go to Stream+"_dead_letters", and three key-value buckets
	// Stream+"_queues", "_leases" and "_retries" hold the queue registry,
	// the partition leases and the delayed-redelivery counts. Default
	// Exchange.
	Stream string

	// Partitions is how many partitions the stream's subjects are split in
	// by [Config.PartitionKey]. Each replica queue has one durable pull
	// consumer per partition, and each partition is pulled by one
	// subscription at a time, so that one key's events stay in order while
	// up to Partitions subscriptions (processes) share a queue. Default
	// [DefaultPartitions]; at most 256.
	Partitions int

	// PartitionKey returns the key that picks a message's partition.
	// cqrsync.PartitionKey (the cqrs_id and the instance's primary key) keeps
	// every row's events in one partition. Default: the CQRS ID, which keeps
	// each model's events in one partition.
	PartitionKey func(m *transport.Message) []byte

	// AckWait is how long JetStream waits for a delivery to be settled
	// before it delivers the message again (to whichever subscription pulls
	// the partition then). A live subscription keeps the deliveries it
	// holds in progress every AckWait/3, so only a dead subscription's, or
	// one cut from the server for longer, come again. Default
	// [DefaultAckWait] (30 s).
	AckWait time.Duration

	// LeaseTTL is how long a subscription keeps a partition after its last
	// renewal: after a crash, the partition is taken over within LeaseTTL,
	// and the crashed subscription's unsettled deliveries come back after
	// AckWait. Default [DefaultLeaseTTL] (6 s); at least 300 ms.
	LeaseTTL time.Duration

	// RetryMemory is how long the number of NackDelay calls of a message
	// ([transport.Delivery.Delays]) is kept after the last one. Default
	// [DefaultRetryMemory] (7 days).
	RetryMemory time.Duration

	// Replicas is the number of stream replicas in a clustered JetStream.
	// Default 1.
	Replicas int

	// PullBatch bounds how many messages one pull request asks for (it is
	// also bounded by the prefetch). Default [DefaultPullBatch].
	PullBatch int

	// PullWait is how long one pull request waits for messages; a
	// subscription ends (Close) within about PullWait. Default 1 s.
	PullWait time.Duration

	// ReconnectWait is the pause between reconnection attempts; the client
	// reconnects forever. Default 250 ms.
	ReconnectWait time.Duration

	// Name is the connection name the server shows. Default "cqrsync".
	Name string

	// Logger receives reconnections and lost leases. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of c (nil means the zero Config) with every
// zero field set to its default.
func (c *Config) WithDefaults() *Config {
	var out Config
	if c != nil {
		out = *c
	}
	out.URL = cmp.Or(out.URL, DefaultURL)
	out.Exchange = cmp.Or(out.Exchange, DefaultExchange)
	out.Stream = cmp.Or(out.Stream, out.Exchange)
	out.Partitions = cmp.Or(out.Partitions, DefaultPartitions)
	if out.PartitionKey == nil {
		out.PartitionKey = cqrsIDKey
	}
	out.AckWait = cmp.Or(out.AckWait, DefaultAckWait)
	out.LeaseTTL = cmp.Or(out.LeaseTTL, DefaultLeaseTTL)
	out.RetryMemory = cmp.Or(out.RetryMemory, DefaultRetryMemory)
	out.Replicas = cmp.Or(out.Replicas, 1)
	out.PullBatch = cmp.Or(out.PullBatch, DefaultPullBatch)
	out.PullWait = cmp.Or(out.PullWait, time.Second)
	out.ReconnectWait = cmp.Or(out.ReconnectWait, 250*time.Millisecond)
	out.Name = cmp.Or(out.Name, "cqrsync")
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return &out
}

func cqrsIDKey(m *transport.Message) []byte { return []byte(m.CQRSID) }

// validate names every wrong field and how to fix it.
func (c *Config) validate() error {
	var errs []error
	if strings.ContainsAny(c.Exchange, ".*> \t") {
		errs = append(errs, fmt.Errorf("nats: Config.Exchange %q contains '.', '*', '>' or a space: it is one subject token", c.Exchange))
	}
	if strings.ContainsAny(c.Stream, ".*> \t/\\") {
		errs = append(errs, fmt.Errorf("nats: Config.Stream %q contains '.', '*', '>', '/', '\\' or a space: JetStream refuses such stream names", c.Stream))
	}
	if c.Partitions < 1 || c.Partitions > maxPartitions {
		errs = append(errs, fmt.Errorf("nats: Config.Partitions is %d: use 1 to %d", c.Partitions, maxPartitions))
	}
	if c.LeaseTTL < 300*time.Millisecond {
		errs = append(errs, fmt.Errorf("nats: Config.LeaseTTL is %v: use at least 300ms (JetStream expires keys about every 100ms)", c.LeaseTTL))
	}
	for name, d := range map[string]time.Duration{"AckWait": c.AckWait, "RetryMemory": c.RetryMemory, "PullWait": c.PullWait, "ReconnectWait": c.ReconnectWait} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("nats: Config.%s is negative (%v)", name, d))
		}
	}
	if c.PullBatch < 1 {
		errs = append(errs, fmt.Errorf("nats: Config.PullBatch is %d: use at least 1", c.PullBatch))
	}
	return errors.Join(errs...)
}

// partition returns the partition of m.
func (c *Config) partition(m *transport.Message) int {
	if c.Partitions == 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write(c.PartitionKey(m))
	return int(h.Sum32() % uint32(c.Partitions))
}

// redactURL returns the server URLs with their passwords replaced by "xxxxx".
func redactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(unparsable URL)"
			continue
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

package kafka

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrsync/cqrsync/transport"
)

// Defaults applied by [Config.WithDefaults].
const (
	// DefaultExchange names the topics, as django-cqrs's exchange names
	// RabbitMQ's: the broadcast topic is "cqrs".
	DefaultExchange = "cqrs"
	// DefaultPartitions is the partition count of the broadcast and queue
	// topics this transport creates: how many consumers of one queue can
	// apply events at once.
	DefaultPartitions = 6
	// DefaultCommitInterval is how long settled offsets may wait before
	// they are committed in one request.
	DefaultCommitInterval = 100 * time.Millisecond
	// DefaultRevokeWait bounds how long a consumer group member handing
	// partitions over in a rebalance waits for their deliveries to be
	// settled.
	DefaultRevokeWait = 10 * time.Second
	// DefaultMaxHeld caps the retries a subscription keeps waiting for
	// their delay before it stops fetching its queue topic.
	DefaultMaxHeld = 10000
)

// Config configures a [Transport]. Brokers is required; every other field
// documents its default and unit.
type Config struct {
	// Brokers are the seed brokers, "host:port". Required.
	Brokers []string

	// Exchange names the topics (see the package documentation's
	// Topology). Default [DefaultExchange] ("cqrs").
	Exchange string

	// TopicPerModel puts each model's broadcasts on a topic of its own,
	// "<exchange>.<cqrs_id>", instead of one topic for all, "<exchange>". A
	// queue then reads only the topics of the models it registers, at the
	// price of more topics. Default false.
	TopicPerModel bool

	// Partitions is the partition count of the topics the transport creates
	// (broadcast and queue topics; dead-letter topics have one). Topics that
	// exist keep theirs. Default [DefaultPartitions].
	Partitions int32

	// ReplicationFactor of the topics the transport creates. Default -1,
	// the broker's default.
	ReplicationFactor int16

	// HeartbeatInterval is how often a consumer group member tells the
	// group it lives; a rebalance after a member joins reaches the others
	// within one. Default kgo's, 3 s.
	HeartbeatInterval time.Duration

	// SessionTimeout is how long a member that dies without leaving keeps
	// its partitions before the group hands them to the others. It must lie
	// within the brokers' group.min/max.session.timeout.ms. Default kgo's,
	// 45 s.
	SessionTimeout time.Duration

	// CommitInterval is the longest settled offsets wait before they are
	// committed. Default [DefaultCommitInterval] (100 ms).
	CommitInterval time.Duration

	// RevokeWait is how long a member that loses partitions in a rebalance
	// waits for their outstanding deliveries to be settled (and commits
	// them) before it lets the rebalance go on; the group's other members
	// wait meanwhile. What is still unsettled then is delivered again to
	// the new owner. It must stay below the group's rebalance timeout (kgo's
	// default 60 s). Default [DefaultRevokeWait] (10 s).
	RevokeWait time.Duration

	// MaxHeld caps the retries (NackDelay) a subscription holds in memory
	// until their delay passes; beyond it the subscription pauses its
	// queue topic. Default [DefaultMaxHeld].
	MaxHeld int

	// Key returns the record key of a message. Default [RowKey]: cqrs_id
	// and instance_pk, so every event of one row goes to one partition.
	Key func(m *transport.Message) []byte

	// ClientOptions are added to every franz-go client the transport opens
	// (TLS, SASL, timeouts). Options the transport sets itself (seed
	// brokers, consumer group, topics) must not be among them.
	ClientOptions []kgo.Opt

	// Logger receives warnings (commit failures, rebalances). Default
	// slog.Default().
	Logger *slog.Logger

	// Now is the clock message expiration and retry delays are measured
	// with. Default time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c (nil means all defaults) with zero fields
// filled in.
func (c *Config) WithDefaults() *Config {
	var out Config
	if c != nil {
		out = *c
	}
	out.Exchange = cmp.Or(out.Exchange, DefaultExchange)
	out.Partitions = cmp.Or(out.Partitions, DefaultPartitions)
	out.ReplicationFactor = cmp.Or(out.ReplicationFactor, -1)
	out.CommitInterval = cmp.Or(out.CommitInterval, DefaultCommitInterval)
	out.MaxHeld = cmp.Or(out.MaxHeld, DefaultMaxHeld)
	out.RevokeWait = cmp.Or(out.RevokeWait, DefaultRevokeWait)
	if out.Key == nil {
		out.Key = RowKey
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return &out
}

func (c *Config) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: Config.Brokers is empty: name at least one seed broker, host:port"))
	}
	if err := topicName("Config.Exchange", c.Exchange); err != nil {
		errs = append(errs, err)
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka: Config.Partitions is %d: use a positive count, or 0 for the default %d", c.Partitions, DefaultPartitions))
	}
	if c.HeartbeatInterval < 0 || c.SessionTimeout < 0 || c.CommitInterval < 0 || c.MaxHeld < 0 || c.RevokeWait < 0 {
		errs = append(errs, errors.New("kafka: Config: HeartbeatInterval, SessionTimeout, CommitInterval, RevokeWait and MaxHeld must not be negative: use 0 for the defaults"))
	}
	return errors.Join(errs...)
}

// maxTopicName is Kafka's limit on topic names.
const maxTopicName = 249

// topicName checks that name can be (part of) a Kafka topic name: ASCII
// letters, digits, '.', '_' and '-'.
func topicName(what, name string) error {
	if name == "" {
		return fmt.Errorf("kafka: %s is empty", what)
	}
	if len(name) > maxTopicName {
		return fmt.Errorf("kafka: %s %q is longer than Kafka's %d characters for a topic name", what, name, maxTopicName)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("kafka: %s %q holds %q: Kafka topic names (which this transport derives from it) take only ASCII letters, digits, '.', '_' and '-'", what, name, r)
		}
	}
	return nil
}

// RowKey is the default [Config.Key]: the message's CQRS ID and the body's
// instance_pk (django-cqrs's payload field, as its raw JSON), so the events
// of one row share a partition and keep their order. A body without a
// top-level instance_pk is keyed by its CQRS ID alone. The body is read,
// never changed.
func RowKey(m *transport.Message) []byte {
	key := make([]byte, 0, len(m.CQRSID)+24)
	key = append(key, m.CQRSID...)
	if pk, ok := topLevelField(m.Body, "instance_pk"); ok {
		key = append(key, 0)
		key = append(key, bytes.Trim(pk, `"`)...)
	}
	return key
}

// topLevelField returns the raw JSON value of the member name of the JSON
// object body, without decoding the rest: the payload's other members are
// skipped, nested ones never match. It reports false for a body that is
// not an object it can read, or has no such member.
func topLevelField(body []byte, name string) ([]byte, bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != '"' {
			return nil, false
		}
		end := skipString(body, i)
		if end < 0 {
			return nil, false
		}
		key := body[i+1 : end-1]
		i = skipSpace(body, end)
		if i >= len(body) || body[i] != ':' {
			return nil, false
		}
		i = skipSpace(body, i+1)
		start := i
		if i = skipValue(body, i); i < 0 {
			return nil, false
		}
		if string(key) == name {
			return body[start:i], true
		}
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != ',' {
			return nil, false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"'),
// or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the JSON value starting at b[i], or
// -1 when it does not end.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	start := i
	for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
		i++
	}
	if i == start {
		return -1
	}
	return i
}

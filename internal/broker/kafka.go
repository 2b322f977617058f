package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	configkafka "github.com/cqrsync/cqrsync/config/kafka"
	"github.com/cqrsync/cqrsync/transport/kafka"
)

// kafkaBroker is the run's share of a Kafka cluster (kafka://host:port) or
// of an in-process kfake cluster (kafka://kfake): its own topics and
// consumer groups, named after the run's exchange, and a raw franz-go
// client for the baselines, the lag sampler and the clean-up.
type kafkaBroker struct {
	raw      string
	cfg      *kafka.Config
	fake     bool
	stop     func()
	cl       *kgo.Client
	adm      *kadm.Client
	inspect  *kafka.Transport // for Depth
	exchange string

	mu     sync.Mutex
	rawTop map[string]string // raw queue -> raw topic
}

func init() {
	Register(dialKafka, "kafka")
}

func dialKafka(ctx context.Context, rawURL, exchange string, logger *slog.Logger) (Broker, error) {
	cfg, fake, stop, err := configkafka.Resolve(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.Exchange, cfg.Logger = exchange, logger
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ProducerLinger(0))
	if err != nil {
		stop()
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	inspect, err := kafka.New(ctx, cfg)
	if err != nil {
		cl.Close()
		stop()
		return nil, err
	}
	return &kafkaBroker{raw: rawURL, cfg: cfg, fake: fake, stop: stop, cl: cl, adm: kadm.NewClient(cl), inspect: inspect, exchange: exchange, rawTop: map[string]string{}}, nil
}

func (b *kafkaBroker) Version() string {
	if b.fake {
		return "kfake (franz-go's in-process Kafka; not a Kafka server)"
	}
	return fmt.Sprintf("Kafka (%d seed brokers)", len(b.cfg.Brokers))
}

func (b *kafkaBroker) Redacted() string { return b.raw }

func (b *kafkaBroker) Transport(ctx context.Context, _ string) (Transport, error) {
	cfg := *b.cfg
	return kafka.New(ctx, &cfg)
}

// Track is a no-op: Close deletes every topic and group named after the
// run's exchange.
func (b *kafkaBroker) Track(...string) {}

func (b *kafkaBroker) rawTopic(key string) string { return b.exchange + ".raw." + key }

// DeclareRaw creates key's raw topic, with the transport's partition count,
// which queue reads with a consumer group of its own.
func (b *kafkaBroker) DeclareRaw(queue, key string) error {
	topic := b.rawTopic(key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resps, err := b.adm.CreateTopics(ctx, b.partitions(), -1, nil, topic)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	b.mu.Lock()
	b.rawTop[queue] = topic
	b.mu.Unlock()
	return nil
}

func (b *kafkaBroker) partitions() int32 {
	if b.cfg.Partitions > 0 {
		return b.cfg.Partitions
	}
	return kafka.DefaultPartitions
}

// RawPublish produces n records of body to key's raw topic, batch at a
// time, each batch acknowledged by the brokers (acks=all, idempotent), as
// the transport's Publish is; records are keyed by their number, spread
// over the partitions as rows are.
func (b *kafkaBroker) RawPublish(ctx context.Context, key string, body []byte, n, batch int) (float64, error) {
	topic := b.rawTopic(key)
	recs := make([]*kgo.Record, 0, batch)
	start := time.Now()
	for sent := 0; sent < n; {
		recs = recs[:0]
		for i := 0; i < batch && sent+i < n; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: strconv.AppendInt(nil, int64(sent+i), 10), Value: body})
		}
		if err := b.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return 0, fmt.Errorf("raw produce: %w", err)
		}
		sent += len(recs)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// RawConsume reads n records of queue's raw topic from its start with a
// consumer group of its own, prefetch records per poll, committing the
// offsets every ackEvery records, as the transport commits settled ones.
func (b *kafkaBroker) RawConsume(ctx context.Context, queue string, n, prefetch, ackEvery int) (float64, error) {
	b.mu.Lock()
	topic := b.rawTop[queue]
	b.mu.Unlock()
	if topic == "" {
		return 0, fmt.Errorf("raw queue %s was not declared", queue)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.cfg.Brokers...), kgo.ConsumerGroup(b.exchange+".raw."+queue),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return 0, fmt.Errorf("raw consumer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var (
		got     int
		pending []*kgo.Record
	)
	start := time.Now()
	for got < n {
		fs := cl.PollRecords(ctx, prefetch)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("raw consume: %d of %d records: %w", got, n, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return 0, fmt.Errorf("raw consume: %w", ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			pending = append(pending, r)
			if len(pending) >= ackEvery || got == n {
				if err := cl.CommitRecords(ctx, pending...); err != nil && ferr == nil {
					ferr = err
				}
				pending = pending[:0]
			}
		})
		if ferr != nil {
			return 0, fmt.Errorf("raw commit: %w", ferr)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// Depth is the transport's QueueDepth: the lag of queue's consumer group.
func (b *kafkaBroker) Depth(queue string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return b.inspect.QueueDepth(ctx, queue)
}

// Close deletes the run's topics and groups, and stops kfake if the run
// started it.
func (b *kafkaBroker) Close() error {
	defer b.stop()
	defer b.cl.Close()
	defer b.inspect.Close()
	if b.fake {
		return nil // the cluster goes with everything in it
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	groups, err := b.adm.ListGroups(ctx)
	if err == nil {
		if del := b.mine(groups.Groups()); len(del) > 0 {
			_, err = b.adm.DeleteGroups(ctx, del...)
		}
	}
	errs = append(errs, err)
	topics, err := b.adm.ListTopics(ctx)
	if err == nil {
		if del := b.mine(topics.Names()); len(del) > 0 {
			_, err = b.adm.DeleteTopics(ctx, del...)
		}
	}
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up the run's Kafka topics and groups: %w", err)
	}
	return nil
}

// mine returns the names of the run's topics and groups: the exchange and
// those under it.
func (b *kafkaBroker) mine(names []string) []string {
	var out []string
	for _, n := range names {
		if n == b.exchange || strings.HasPrefix(n, b.exchange+".") {
			out = append(out, n)
		}
	}
	return out
}

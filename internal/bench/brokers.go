package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/cqrsync/cqrsync/transport"
)

// Broker is one kind of broker a run measures: the run's transports, the
// raw baselines of the same server and its queue depth. RabbitMQ's is
// built in (amqp://, amqps://); other transports register theirs with
// [RegisterBroker] from a file of this package.
type Broker interface {
	// Version names the server and its version, e.g. "RabbitMQ 3.12.1".
	Version() string
	// Redacted is the broker's URL without its password, for the report.
	Redacted() string
	// Transport connects one side of the pipeline ("master" or "replica")
	// to the run's exchange.
	Transport(ctx context.Context, name string) (Transport, error)
	// Track remembers queues the run uses, to delete them at Close.
	Track(queues ...string)
	// DeclareRaw makes queue receive what RawPublish sends under key.
	DeclareRaw(queue, key string) error
	// RawPublish publishes n messages of body under key in batches of
	// batch, waiting for the broker to confirm each batch, as the relay
	// must; it returns the confirmed messages per second.
	RawPublish(ctx context.Context, key string, body []byte, n, batch int) (float64, error)
	// RawConsume receives n messages waiting in queue, prefetch at a time,
	// acknowledging every ackEvery, and returns messages per second.
	RawConsume(ctx context.Context, queue string, n, prefetch, ackEvery int) (float64, error)
	// Depth returns the number of messages waiting in queue, not counting
	// those delivered and not yet acknowledged.
	Depth(queue string) (int, error)
	// Close deletes what the run declared and disconnects.
	Close() error
}

// RawPipeliner is a [Broker] that also measures a raw pipeline: what a
// consumer with no cqrsync in it reaches on this machine when the broker
// and the replica database share it. The measured figure is the drain's
// ceiling, as the raw consume alone is not when the replica is slower
// than the broker.
type RawPipeliner interface {
	// RawPipeline publishes n messages of body (not timed), then measures
	// their consumption as a consumer does it: one puller hands batches of
	// up to batch messages to workers goroutines; a worker calls apply
	// with the number of messages, then acknowledges each of them on its
	// own, as a consumer that may retry or dead-letter any one message
	// must. It returns messages per second.
	RawPipeline(ctx context.Context, body []byte, n, workers, batch int, apply func(ctx context.Context, worker, n int) error) (float64, error)
}

// Transport is one side's connection to the broker.
type Transport interface {
	transport.Publisher
	transport.Subscriber
	// Close disconnects.
	Close() error
}

// BrokerOpener connects to the broker at rawURL for a run whose exchange
// (or stream, or topic) is named exchange.
type BrokerOpener func(ctx context.Context, rawURL, exchange string, logger *slog.Logger) (Broker, error)

var (
	brokersMu sync.RWMutex
	brokers   = map[string]BrokerOpener{}
)

// RegisterBroker makes the URL schemes open with open.
func RegisterBroker(open BrokerOpener, schemes ...string) {
	brokersMu.Lock()
	defer brokersMu.Unlock()
	for _, s := range schemes {
		brokers[s] = open
	}
}

// Schemes lists the URL schemes of the registered brokers, e.g. "amqp://".
func Schemes() []string {
	brokersMu.RLock()
	known := make([]string, 0, len(brokers))
	for s := range brokers {
		known = append(known, s+"://")
	}
	brokersMu.RUnlock()
	slices.Sort(known)
	return known
}

// openBroker opens the broker of rawURL's scheme.
func openBroker(ctx context.Context, rawURL, exchange string, logger *slog.Logger) (Broker, error) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if u, err := url.Parse(rawURL); err == nil {
		scheme, ok = u.Scheme, u.Scheme != ""
	}
	brokersMu.RLock()
	open := brokers[scheme]
	brokersMu.RUnlock()
	if !ok || open == nil {
		return nil, fmt.Errorf("bench: --transport: scheme %q is not supported: use one of %s", scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, rawURL, exchange, logger)
}

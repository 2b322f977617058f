package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// TransportKind is one kind of transport URL: the schemes it answers and
// how to connect. RabbitMQ's (amqp://, amqps://) is built in; a transport
// package registers its own from a package under config/ that a program
// imports for its side effect (config/nats, config/kafka), so that a
// program links only the brokers it uses.
type TransportKind struct {
	// Schemes are the URL schemes, without "://", e.g. "amqp", "amqps".
	Schemes []string
	// Example is a URL of the kind, with the broker's name, for messages:
	// "amqp://user:password@host:5672/ (RabbitMQ)".
	Example string
	// Open connects to the broker.
	Open func(ctx context.Context, req *TransportRequest) (*cli.Transport, error)
}

// TransportRequest is what [TransportKind.Open] is given.
type TransportRequest struct {
	// URL is transport.url. It may hold a password: never print it.
	URL string
	// Exchange is transport.exchange; "" means "cqrs".
	Exchange string
	// Logger receives the transport's logs.
	Logger *slog.Logger
}

var (
	transportsMu sync.RWMutex
	transports   = map[string]*TransportKind{}
)

// RegisterTransport makes transport URLs of k's schemes open with k.Open.
// A scheme registered twice is a programming error: it panics.
func RegisterTransport(k *TransportKind) {
	transportsMu.Lock()
	defer transportsMu.Unlock()
	for _, s := range k.Schemes {
		if _, dup := transports[s]; dup {
			panic("config: transport scheme " + s + " registered twice")
		}
		transports[s] = k
	}
}

func init() {
	RegisterTransport(&TransportKind{
		Schemes: []string{"amqp", "amqps"},
		Example: "amqp://user:password@host:5672/ (RabbitMQ)",
		Open: func(ctx context.Context, req *TransportRequest) (*cli.Transport, error) {
			t, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: req.URL, Exchange: req.Exchange, Logger: req.Logger})
			if err != nil {
				return nil, err
			}
			return &cli.Transport{Publisher: t, Subscriber: t, DeadLetters: t, Close: t.Close}, nil
		},
	})
}

// transportKind returns the kind of raw's scheme, or an error that lists
// the schemes the program can open.
func transportKind(raw string) (*TransportKind, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL (details withheld because it may contain a password): use " + strings.Join(transportExamples(), " or ") + ", and percent-encode reserved characters")
	}
	transportsMu.RLock()
	k := transports[u.Scheme]
	transportsMu.RUnlock()
	if k == nil {
		return nil, fmt.Errorf("scheme %q is not supported: use %s (a program opens other brokers' URLs once it imports their package under config/)", u.Scheme, strings.Join(transportExamples(), " or "))
	}
	return k, nil
}

// transportExamples lists the registered kinds' examples, sorted.
func transportExamples() []string {
	transportsMu.RLock()
	defer transportsMu.RUnlock()
	var ex []string
	for _, k := range transports {
		if !slices.Contains(ex, k.Example) {
			ex = append(ex, k.Example)
		}
	}
	slices.Sort(ex)
	return ex
}

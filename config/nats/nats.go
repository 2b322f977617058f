// Package nats lets package config open nats:// transport URLs with the
// NATS JetStream transport (transport/nats). Import it for its side effect:
//
//	import _ "github.com/cqrsync/cqrsync/config/nats"
//
// The URL may carry the transport's settings as query parameters, which
// are taken off before the URL goes to the NATS client:
//
//	nats://user:password@host:4222?partitions=8&stream=orders&ack_wait=30s&lease_ttl=6s
//
// transport.exchange is the subjects' first token (and the stream's name
// unless stream= says otherwise). Events are partitioned by
// cqrsync.PartitionKey, so one row's events stay in order while up to
// "partitions" consumer processes share a queue; every process of an
// exchange must use the same partition count.
package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/config"
	"github.com/cqrsync/cqrsync/transport/nats"
)

func init() {
	config.RegisterTransport(&config.TransportKind{
		Schemes: []string{"nats"},
		Example: "nats://user:password@host:4222?partitions=N (NATS JetStream)",
		Open: func(ctx context.Context, req *config.TransportRequest) (*cli.Transport, error) {
			cfg, err := ParseURL(req.URL)
			if err != nil {
				return nil, cli.UsageError{Err: err}
			}
			cfg.Exchange = req.Exchange
			cfg.Logger = req.Logger
			t, err := nats.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return &cli.Transport{Publisher: t, Subscriber: t, DeadLetters: t, Close: t.Close}, nil
		},
	})
}

// ParseURL returns the transport configuration of a nats:// URL: the
// server URL without the query, and the settings its query parameters
// give (partitions, stream, ack_wait, lease_ttl), with cqrsync.PartitionKey
// as the partition key. An unknown parameter is an error, so that a typo
// does not pass silently. The error never shows the URL (it may hold a
// password).
func ParseURL(raw string) (*nats.Config, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "nats" || u.Host == "" {
		return nil, errors.New("nats: transport URL is not nats://host:port (details withheld because it may contain a password)")
	}
	cfg := &nats.Config{PartitionKey: cqrsync.PartitionKey}
	var errs []error
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "partitions":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("nats: partitions=%q: want a whole number of at least 1", v))
			}
			cfg.Partitions = n
		case "stream":
			cfg.Stream = v
		case "ack_wait", "lease_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("nats: %s=%q: want a positive duration such as 30s", k, v))
			}
			if k == "ack_wait" {
				cfg.AckWait = d
			} else {
				cfg.LeaseTTL = d
			}
		default:
			errs = append(errs, fmt.Errorf("nats: unknown URL parameter %q: use partitions, stream, ack_wait or lease_ttl", k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	u.RawQuery = ""
	cfg.URL = u.String()
	return cfg, nil
}

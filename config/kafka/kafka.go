// Package kafka lets package config open kafka:// transport URLs with
// transport/kafka. Import it for its side effect:
//
//	import _ "github.com/cqrsync/cqrsync/config/kafka"
//
// kafka://host:port,host:port names the seed brokers; the query sets
// exchange (the topic names' prefix; default transport.exchange, else
// "cqrs"), partitions (of the topics the transport creates, default 6) and
// per_model=true (a broadcast topic per model). kafka://kfake starts franz-go's in-process kfake
// cluster instead, for the demo and `cqrsync bench` on a machine without
// Kafka (its figures are kfake's, not a Kafka cluster's); it stops when
// the transport closes.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/config"
	"github.com/cqrsync/cqrsync/transport/kafka"
)

func init() {
	config.RegisterTransport(&config.TransportKind{
		Schemes: []string{"kafka"},
		Example: "kafka://host:9092,host:9092 (Kafka)",
		Open:    Open,
	})
}

// KfakeHost is the host of a kafka:// URL that starts an in-process kfake
// cluster.
const KfakeHost = "kfake"

// ParseURL returns the transport configuration a kafka:// URL describes,
// and whether it asks for an in-process kfake cluster (whose brokers the
// caller fills in).
func ParseURL(raw string) (cfg *kafka.Config, fake bool, err error) {
	rest, ok := strings.CutPrefix(raw, "kafka://")
	if !ok {
		return nil, false, fmt.Errorf("kafka: %q is not a kafka:// URL: use kafka://host:port,host:port?exchange=cqrs", raw)
	}
	hosts, rawQuery, _ := strings.Cut(rest, "?")
	if strings.ContainsAny(hosts, "@/") {
		return nil, false, errors.New("kafka: a kafka:// URL has no user or path: use kafka://host:port,host:port (TLS and SASL through kafka.Config.ClientOptions in Go)")
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, false, fmt.Errorf("kafka: the query of %q: %w", raw, err)
	}
	cfg = &kafka.Config{}
	fake = hosts == KfakeHost
	if !fake {
		if hosts == "" {
			return nil, false, fmt.Errorf("kafka: %q names no broker: use kafka://host:port (or kafka://kfake for an in-process cluster)", raw)
		}
		for _, b := range strings.Split(hosts, ",") {
			if b == "" {
				return nil, false, fmt.Errorf("kafka: %q: empty broker in the host list", raw)
			}
			if !strings.Contains(b, ":") {
				b += ":9092"
			}
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	var errs []error
	for k, vs := range query {
		v := vs[len(vs)-1]
		switch k {
		case "exchange":
			cfg.Exchange = v
		case "partitions":
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("kafka: partitions=%q: use a positive count", v))
			}
			cfg.Partitions = int32(n)
		case "per_model":
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("kafka: per_model=%q: use true or false", v))
			}
			cfg.TopicPerModel = b
		default:
			errs = append(errs, fmt.Errorf("kafka: unknown URL parameter %q: use exchange, partitions or per_model", k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, false, err
	}
	return cfg, fake, nil
}

// Resolve returns the transport configuration of a kafka:// URL with its
// brokers filled in: for kafka://kfake it starts an in-process kfake
// cluster, which stop stops (a no-op otherwise). fake says which.
func Resolve(raw string) (cfg *kafka.Config, fake bool, stop func(), err error) {
	if cfg, fake, err = ParseURL(raw); err != nil {
		return nil, false, nil, err
	}
	if !fake {
		return cfg, false, func() {}, nil
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, false, nil, fmt.Errorf("kafka: start kfake: %w", err)
	}
	cfg.Brokers = cluster.ListenAddrs()
	return cfg, true, cluster.Close, nil
}

// Open connects the transport req.URL describes (see [Resolve]), on
// req.Exchange unless the URL names one. The returned Close closes it, and
// then the kfake cluster kafka://kfake started. It is the kafka:// scheme's
// opener in package config.
func Open(ctx context.Context, req *config.TransportRequest) (*cli.Transport, error) {
	cfg, _, stop, err := Resolve(req.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Exchange == "" {
		cfg.Exchange = req.Exchange
	}
	cfg.Logger = req.Logger
	tr, err := kafka.New(ctx, cfg)
	if err != nil {
		stop()
		return nil, err
	}
	return &cli.Transport{Publisher: tr, Subscriber: tr, DeadLetters: tr, Close: func() error {
		err := tr.Close()
		stop()
		return err
	}}, nil
}

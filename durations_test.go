package cqrsync_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/config"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/outbox/pglisten"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport/memory"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// TestNegativeDurations sets every time.Duration of every public
// configuration to a negative value, one at a time. Each is refused with
// an error naming the field, or has a documented meaning (NoExpiry), in
// which case the component starts and stops without a panic.
func TestNegativeDurations(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`)
	broker := memory.NewBroker(nil)
	pub := broker.Publisher()
	t.Cleanup(func() { _ = pub.Close() })
	const neg = -time.Second

	// consumer starts and stops a consumer of model item with cfg adjusted.
	consumer := func(adjust func(*cqrsync.ConsumerConfig), model func(*cqrsync.ReplicaModel), replicaCfg func(*cqrsync.ReplicaConfig)) error {
		rc := &cqrsync.ReplicaConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if replicaCfg != nil {
			replicaCfg(rc)
		}
		replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), rc)
		if err != nil {
			return err
		}
		m := &cqrsync.ReplicaModel{CQRSID: "item", Table: "item"}
		if model != nil {
			model(m)
		}
		if err := replica.Register(m); err != nil {
			return err
		}
		cfg := &cqrsync.ConsumerConfig{Replica: replica, Subscriber: broker.Subscriber(), Publisher: pub, Queue: "q",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if adjust != nil {
			adjust(cfg)
		}
		c, err := cqrsync.NewConsumer(cfg)
		if err != nil {
			return err
		}
		if err := c.Start(t.Context()); err != nil {
			return err
		}
		<-c.Started()
		return c.Stop()
	}
	master := func(cfg *cqrsync.MasterConfig, model *cqrsync.MasterModel) error {
		m, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), cfg)
		if err != nil {
			return err
		}
		if model != nil {
			return m.Register(model)
		}
		return nil
	}
	relay := func(cfg outbox.Config) error {
		cfg.Publisher = pub
		r, err := outbox.NewRelay(databasesql.New(db, sqldialect.SQLite()), &cfg)
		if err != nil {
			return err
		}
		if err := r.Start(t.Context()); err != nil {
			return err
		}
		<-r.Started()
		return r.Stop()
	}
	pglistenRun := func(cfg pglisten.Config) error {
		cfg.ConnString, cfg.OnNotify = "postgres://nobody@127.0.0.1:1/none", func() {}
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // a valid config returns nil at once on a done context
		return pglisten.Run(ctx, &cfg)
	}
	rabbit := func(cfg rabbitmq.Config) error {
		cfg.URL = "amqp://guest:guest@127.0.0.1:1/"
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		tr, err := rabbitmq.New(ctx, &cfg)
		if err == nil {
			_ = tr.Close()
		}
		return err
	}
	yaml := func(doc string) error {
		_, err := config.Parse("cqrsync.yaml", []byte(doc), nil)
		return err
	}

	cases := []struct {
		field string
		run   func() error
		// refused is the text the error must hold; "" means the value has a
		// documented meaning and must be accepted.
		refused string
	}{
		{"MasterConfig.MessageTTL", func() error { return master(&cqrsync.MasterConfig{MessageTTL: neg}, nil) }, "MasterConfig.MessageTTL"},
		{"MasterConfig.MessageTTL NoExpiry", func() error { return master(&cqrsync.MasterConfig{MessageTTL: cqrsync.NoExpiry}, nil) }, ""},
		{"MasterModel.MessageTTL", func() error {
			return master(&cqrsync.MasterConfig{}, &cqrsync.MasterModel{CQRSID: "item", Table: "item", MessageTTL: neg})
		}, "MessageTTL"},
		{"MasterModel.MessageTTL NoExpiry", func() error {
			return master(&cqrsync.MasterConfig{}, &cqrsync.MasterModel{CQRSID: "item", Table: "item", MessageTTL: cqrsync.NoExpiry})
		}, ""},
		{"ReplicaConfig.TombstoneRetention", func() error {
			return consumer(nil, nil, func(c *cqrsync.ReplicaConfig) { c.TombstoneRetention = neg })
		}, "ReplicaConfig.TombstoneRetention"},
		{"ReplicaModel.QueryTimeout", func() error { return consumer(nil, func(m *cqrsync.ReplicaModel) { m.QueryTimeout = neg }, nil) }, "QueryTimeout"},
		{"ConsumerConfig.DeadLetterTTL", func() error { return consumer(func(c *cqrsync.ConsumerConfig) { c.DeadLetterTTL = 2 * neg }, nil, nil) }, "ConsumerConfig.DeadLetterTTL"},
		{"ConsumerConfig.DeadLetterTTL NoExpiry", func() error {
			return consumer(func(c *cqrsync.ConsumerConfig) { c.DeadLetterTTL = cqrsync.NoExpiry }, nil, nil)
		}, ""},
		{"ConsumerConfig.BatchWait", func() error { return consumer(func(c *cqrsync.ConsumerConfig) { c.BatchWait = neg }, nil, nil) }, "ConsumerConfig.BatchWait"},
		{"ConsumerConfig.PurgeInterval", func() error { return consumer(func(c *cqrsync.ConsumerConfig) { c.PurgeInterval = -1 }, nil, nil) }, "ConsumerConfig.PurgeInterval"},
		{"ConsumerConfig.ShutdownTimeout", func() error { return consumer(func(c *cqrsync.ConsumerConfig) { c.ShutdownTimeout = neg }, nil, nil) }, "ConsumerConfig.ShutdownTimeout"},
		{"RetryDeadLettersOpts.MessageTTL", func() error {
			_, err := tools.RetryDeadLetters(t.Context(), broker, pub, "q", "dead_letter_q", &tools.RetryDeadLettersOpts{MessageTTL: neg})
			return err
		}, "RetryDeadLettersOpts.MessageTTL"},
		{"DeadLetterFilter.OlderThan (documented: not positive selects all)", func() error {
			_, err := tools.DumpDeadLetters(t.Context(), broker, "dead_letter_q", &tools.DeadLetterFilter{OlderThan: neg}, io.Discard)
			return err
		}, ""},
		{"outbox.Config.PollInterval", func() error { return relay(outbox.Config{PollInterval: neg}) }, "Config.PollInterval"},
		{"outbox.Config.Lease", func() error { return relay(outbox.Config{Lease: neg}) }, "Config.Lease"},
		{"outbox.Config.PublishTimeout", func() error { return relay(outbox.Config{PublishTimeout: neg}) }, "Config.PublishTimeout"},
		{"outbox.Config.MinBackoff", func() error { return relay(outbox.Config{MinBackoff: neg}) }, "Config.MinBackoff"},
		{"outbox.Config.MaxBackoff", func() error { return relay(outbox.Config{MaxBackoff: neg}) }, "Config.MaxBackoff"},
		{"pglisten.Config.MinBackoff", func() error { return pglistenRun(pglisten.Config{MinBackoff: neg}) }, "MinBackoff"},
		{"pglisten.Config.MaxBackoff", func() error { return pglistenRun(pglisten.Config{MaxBackoff: neg}) }, "MaxBackoff"},
		{"rabbitmq.Config.Heartbeat", func() error { return rabbit(rabbitmq.Config{Heartbeat: neg}) }, "Config.Heartbeat"},
		{"rabbitmq.Config.ReconnectBackoff.Min", func() error { return rabbit(rabbitmq.Config{ReconnectBackoff: rabbitmq.Backoff{Min: neg}}) }, "ReconnectBackoff"},
		{"rabbitmq.Config.ReconnectBackoff.Max", func() error { return rabbit(rabbitmq.Config{ReconnectBackoff: rabbitmq.Backoff{Max: neg}}) }, "ReconnectBackoff"},
		{"yaml master.message_ttl", func() error { return yaml("master: {message_ttl: -1s}\n") }, "master.message_ttl"},
		{"yaml master.relay_poll_interval", func() error { return yaml("master: {relay_poll_interval: -1s}\n") }, "master.relay_poll_interval: is negative"},
		{"yaml replica.tombstone_retention", func() error { return yaml("replica: {tombstone_retention: -1s}\n") }, "replica.tombstone_retention: is negative"},
		{"yaml replica.dead_letter_ttl", func() error { return yaml("replica: {dead_letter_ttl: -1s}\n") }, "replica.dead_letter_ttl"},
		{"yaml replica.shutdown_timeout", func() error { return yaml("replica: {shutdown_timeout: -1s}\n") }, "replica.shutdown_timeout: is negative"},
		{"yaml replica.batch_wait", func() error { return yaml("replica: {batch_wait: -1s}\n") }, "replica.batch_wait: is negative"},
		{"yaml replica.retry.delay", func() error { return yaml("replica: {retry: {delay: -1s}}\n") }, "replica.retry.delay: is negative"},
		{"yaml replica.retry.max_delay", func() error { return yaml("replica: {retry: {max_delay: -1s}}\n") }, "replica.retry.max_delay: is negative"},
		{"yaml masters[].message_ttl", func() error { return yaml("masters:\n  - {cqrs_id: a, table: a, message_ttl: -1s}\n") }, "masters[0].message_ttl"},
		{"yaml replicas[].query_timeout", func() error {
			return yaml("replicas:\n  - {cqrs_id: a, table: a, query_timeout: -1s}\n")
		}, "replicas[0].query_timeout: is negative"},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panicked: %v", p)
					}
				}()
				err = c.run()
			}()
			switch {
			case c.refused == "" && err != nil:
				t.Fatalf("a documented value was refused: %v", err)
			case c.refused != "" && err == nil:
				t.Fatal("a negative duration was accepted")
			case c.refused != "" && !strings.Contains(err.Error(), c.refused):
				t.Fatalf("error %q does not name the field (%q)", err, c.refused)
			case c.refused != "" && errors.Is(err, context.Canceled):
				t.Fatalf("error %q came from connecting, not from the check", err)
			}
		})
	}
}

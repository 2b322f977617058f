// Package obstest runs a whole pipeline for the observability tests: a
// master on PostgreSQL capturing "account" rows, its relay, a RabbitMQ
// exchange and queue of the test's own, and a consumer applying them to a
// replica on another PostgreSQL schema. Rows named "poison" violate the
// replica's CHECK, so they are retried once and dead-lettered.
package obstest

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// Model is the CQRS ID of the pipeline's model.
const Model = "account"

// Options are the hooks each side gets.
type Options struct {
	// Observe is called once the databases and the transport are open
	// (MasterDriver, Transport and Queue are set) and returns the hooks of
	// the master, relay and consumer, and the master's and replica's
	// propagator.
	Observe func(p *Pipeline) (hook.Hooks, hook.Propagator)
	// HoldRelay leaves the relay stopped: the test starts it.
	HoldRelay bool
}

// Pipeline is a running master → relay → RabbitMQ → consumer → replica.
type Pipeline struct {
	MasterDB, ReplicaDB *sql.DB
	Master              *cqrsync.Master[*sql.Tx]
	MasterDriver        sqldialect.DB
	Relay               *outbox.Relay
	Consumer            *cqrsync.Consumer
	Transport           *rabbitmq.Transport
	Queue               string
}

const table = `CREATE TABLE account (id BIGINT PRIMARY KEY, name TEXT NOT NULL,
	cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ %s)`

// Start starts the pipeline; everything stops and is removed when the test
// ends.
func Start(t *testing.T, o Options) *Pipeline {
	t.Helper()
	ctx := t.Context()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := testenv.AMQPURL(t)
	p := &Pipeline{Queue: cqrsynctesting.UniqueName("cqrsynctest_obs_q_")}
	exchange := cqrsynctesting.UniqueName("cqrsynctest_obs_x_")
	var err error
	p.Transport, err = rabbitmq.New(ctx, &rabbitmq.Config{URL: url, Exchange: exchange, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Transport.Close()
		cqrsynctesting.DeleteRabbitMQ(url, exchange, p.Queue)
	})

	p.MasterDB = cqrsynctesting.OpenPostgres(t, fmt.Sprintf(table, ""))
	p.MasterDriver = databasesql.New(p.MasterDB, sqldialect.Postgres())
	p.ReplicaDB = cqrsynctesting.OpenPostgres(t, fmt.Sprintf(table, "NOT NULL, CHECK (name <> 'poison')"))
	hooks, prop := o.Observe(p)
	p.Relay, err = outbox.NewRelay(p.MasterDriver, &outbox.Config{Publisher: p.Transport, Hooks: hooks, Logger: quiet, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.Master, err = cqrsync.NewMaster(databasesql.New(p.MasterDB, sqldialect.Postgres()), &cqrsync.MasterConfig{
		Relay: p.Relay, Hooks: hooks, Propagator: prop, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Master.Register(&cqrsync.MasterModel{CQRSID: Model, Table: "account"}); err != nil {
		t.Fatal(err)
	}

	replica, err := cqrsync.NewReplica(databasesql.New(p.ReplicaDB, sqldialect.Postgres()), &cqrsync.ReplicaConfig{Propagator: prop, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: Model, Table: "account"}); err != nil {
		t.Fatal(err)
	}
	p.Consumer, err = cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: p.Transport, Publisher: p.Transport, Queue: p.Queue, Workers: 2, Hooks: hooks, Logger: quiet,
		Retry: cqrsync.RetryPolicy{MaxRetries: 1, Delay: func(int) time.Duration { return time.Millisecond }},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Consumer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Consumer.Stop() })
	<-p.Consumer.Started()
	t.Cleanup(func() { _ = p.Relay.Stop() })
	if !o.HoldRelay {
		p.StartRelay(t)
	}
	return p
}

// StartRelay starts the relay (once).
func (p *Pipeline) StartRelay(t *testing.T) {
	t.Helper()
	if err := p.Relay.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Insert creates account id on the master, in a transaction of its own run
// with ctx (whose span, if any, is the capture's parent).
func (p *Pipeline) Insert(ctx context.Context, t *testing.T, id int64, name string) {
	t.Helper()
	err := cqrsync.RunTx(ctx, p.MasterDB, p.Master, func(tx *sql.Tx) error {
		return p.Master.Insert(ctx, tx, Model, map[string]any{"id": id, "name": name})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Rename updates account id's name on the master.
func (p *Pipeline) Rename(ctx context.Context, t *testing.T, id int64, name string) {
	t.Helper()
	err := cqrsync.RunTx(ctx, p.MasterDB, p.Master, func(tx *sql.Tx) error {
		return p.Master.UpdateRow(ctx, tx, Model, id, map[string]any{"name": name})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// PublishStale publishes, straight to the replica's queue, a SAVE of
// account id at revision 0 dated an hour ago: a replica that holds a newer
// revision drops it as stale.
func (p *Pipeline) PublishStale(t *testing.T, id int64) {
	t.Helper()
	updated := cqrsync.FormatDateTime(time.Now().Add(-time.Hour))
	body := fmt.Sprintf(`{"signal_type":"SAVE","cqrs_id":%q,"instance_data":{"id":%d,"name":"old","cqrs_revision":0,"cqrs_updated":%q},`+
		`"previous_data":null,"instance_pk":%d,"correlation_id":null,"retries":0,"expires":null,"meta":null}`, Model, id, updated, id)
	if err := p.Transport.Publish(t.Context(), []transport.Message{{CQRSID: Model, Queue: p.Queue, Body: []byte(body)}}); err != nil {
		t.Fatal(err)
	}
}

// ReplicaName returns account id's name on the replica, "" when absent.
func (p *Pipeline) ReplicaName(t *testing.T, id int64) string {
	t.Helper()
	var name string
	err := p.ReplicaDB.QueryRowContext(t.Context(), `SELECT name FROM account WHERE id = $1`, id).Scan(&name)
	if err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	return name
}

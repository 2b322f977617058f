package outbox_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

func postgresMaster() masterDB {
	return masterDB{
		name: "postgres", dialect: sqldialect.Postgres(), driver: "pgx", timestamp: "TIMESTAMPTZ",
		newDSN: func(t *testing.T) string { return cqrsynctesting.PostgresDSN(t) }, concurrentWriters: true,
	}
}

func init() { extraMasters = append(extraMasters, postgresMaster()) }

func TestOutboxFaultsPostgres(t *testing.T) {
	t.Parallel()
	runOutboxFaults(t, postgresMaster())
}

func mysqlMaster() masterDB {
	return masterDB{
		name: "mysql", dialect: sqldialect.MySQL(), driver: "mysql", timestamp: "DATETIME(6)",
		newDSN: func(t *testing.T) string { return cqrsynctesting.MySQLDSN(t) }, concurrentWriters: true,
	}
}

func init() { extraMasters = append(extraMasters, mysqlMaster()) }

func TestOutboxFaultsMySQL(t *testing.T) {
	t.Parallel()
	runOutboxFaults(t, mysqlMaster())
}

// TestRelayRabbitMQOutage: the broker is unreachable while a PostgreSQL
// master commits changes; once it is back, the relay (reconnecting by
// itself) delivers every event, each row's revisions in order.
func TestRelayRabbitMQOutage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	amqpURL := testenv.AMQPURL(t)
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := cqrsynctesting.NewProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.Addr()
	exchange, queue := cqrsynctesting.UniqueName("cqrsynctest_x_"), cqrsynctesting.UniqueName("cqrsynctest_q_")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The consumer side talks to the broker directly; the relay through the proxy.
	direct, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: amqpURL, Exchange: exchange, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	t.Cleanup(func() { cqrsynctesting.DeleteRabbitMQ(amqpURL, exchange, queue) })
	sub, err := direct.Subscribe(ctx, &transport.SubscribeParams{Queue: queue, CQRSIDs: []string{"item"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: viaProxy.String(), Exchange: exchange, Logger: quiet,
		ReconnectBackoff: rabbitmq.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	m := postgresMaster()
	db, master, err := openMaster(ctx, m, m.newDSN(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	relay, err := outbox.NewRelay(databasesql.New(db, m.dialect), &outbox.Config{Publisher: pub, Logger: quiet,
		PollInterval: 10 * time.Millisecond, PublishTimeout: 2 * time.Second, Lease: 5 * time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer relay.Stop()

	proxy.Cut()
	for id := int64(1); id <= 5; id++ {
		if err := write(ctx, m, db, master, id, "v0", true); err != nil {
			t.Fatal(err)
		}
		for rev := 1; rev <= 3; rev++ {
			if err := write(ctx, m, db, master, id, fmt.Sprintf("v%d", rev), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st, err := relay.Stats(ctx); err != nil || st.Rows != 20 {
		t.Fatalf("backlog while the broker is unreachable = %+v, %v; want 20", st, err)
	}
	proxy.Restore()
	last := map[string]int64{}
	timeout := time.After(30 * time.Second)
	for got := 0; got < 20; {
		select {
		case d := <-sub.Deliveries():
			p, err := cqrsync.DecodePayload(d.Body, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			rev, _ := p.Revision()
			key := fmt.Sprint(p.InstancePK)
			_ = sub.Ack(ctx, d.ID)
			if prev, ok := last[key]; ok && rev <= prev {
				continue // a duplicate from a publish retried after the cut: allowed
			} else if ok && rev != prev+1 {
				t.Fatalf("row %s: revision %d after %d, want revision order", key, rev, prev)
			}
			last[key] = rev
			got++
		case <-timeout:
			t.Fatalf("after the broker came back only %v arrived", last)
		}
	}
}

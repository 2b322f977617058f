package kafka_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/kafka"
)

// cluster is an in-process kfake Kafka cluster whose client connections a
// test can cut. There is no Kafka server on the test machines: every Kafka
// test runs against kfake.
type cluster struct {
	*kfake.Cluster
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// newCluster starts a kfake cluster that the test closes when it ends.
func newCluster(tb testing.TB) *cluster {
	tb.Helper()
	c := &cluster{conns: make(map[net.Conn]struct{})}
	kc, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			return &trackingListener{Listener: ln, c: c}, nil
		}),
	)
	if err != nil {
		tb.Fatalf("kfake: %v", err)
	}
	c.Cluster = kc
	tb.Cleanup(kc.Close)
	return c
}

// Cut closes every client connection the cluster accepted, as a broker
// restart or a network failure would.
func (c *cluster) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn := range c.conns {
		_ = conn.Close()
		delete(c.conns, conn)
	}
}

type trackingListener struct {
	net.Listener
	c *cluster
}

func (l *trackingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.mu.Lock()
	l.c.conns[conn] = struct{}{}
	l.c.mu.Unlock()
	return conn, nil
}

// config is a transport configuration for c with quick group heartbeats,
// so that rebalances take milliseconds.
func (c *cluster) config() *kafka.Config {
	return &kafka.Config{
		Brokers:           c.ListenAddrs(),
		Partitions:        3,
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		CommitInterval:    10 * time.Millisecond,
	}
}

// open returns a transport on c that the test closes when it ends.
func (c *cluster) open(tb testing.TB, cfg *kafka.Config) *kafka.Transport {
	tb.Helper()
	if cfg == nil {
		cfg = c.config()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := kafka.New(ctx, cfg)
	if err != nil {
		tb.Fatalf("kafka.New: %v", err)
	}
	tb.Cleanup(func() { _ = tr.Close() })
	return tr
}

// process stands for one consumer process: its transport dials through it,
// and kill cuts its connections and refuses new ones, as the death of the
// process would. The brokers notice only when its group session expires.
type process struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

func (p *process) dial(ctx context.Context, network, host string) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead {
		return nil, errors.New("process killed")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, host)
	if err == nil {
		p.conns = append(p.conns, conn)
	}
	return conn, err
}

func (p *process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dead = true
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// openProcess returns a transport on c whose connections go through a
// process that the test can kill, with a short group session so that the
// group reassigns a killed member's partitions within a second.
func (c *cluster) openProcess(tb testing.TB) (*kafka.Transport, *process) {
	p := &process{}
	cfg := c.config()
	cfg.SessionTimeout = time.Second
	cfg.ClientOptions = []kgo.Opt{kgo.Dialer(p.dial), kgo.RetryTimeout(2 * time.Second)}
	return c.open(tb, cfg), p
}

// quiet is a logger for the cqrsync parts of the tests.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// itemReplica is a replica on db that applies model "item" to table
// item_copy.
func itemReplica(tb testing.TB, db *sql.DB) *cqrsync.Replica {
	tb.Helper()
	replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), &cqrsync.ReplicaConfig{Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "item", Table: "item_copy"}); err != nil {
		tb.Fatal(err)
	}
	return replica
}

// startConsumer starts a consumer with cfg (its Logger quiet) and waits
// until it has subscribed; the test stops it when it ends.
func startConsumer(tb testing.TB, cfg *cqrsync.ConsumerConfig) *cqrsync.Consumer {
	tb.Helper()
	cfg.Logger = quiet
	cons, err := cqrsync.NewConsumer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := cons.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cons.Stop() })
	<-cons.Started()
	return cons
}

func createTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) error {
	resps, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, -1, nil, topic)
	if err != nil {
		return err
	}
	return resps.Error()
}

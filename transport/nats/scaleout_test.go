package nats_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting/workload"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/nats"
)

// TestScaleOut is the convergence run of the partitioned design: a master
// on SQLite publishes a concurrent workload of creates, updates, deletes
// and re-creates through a relay to a stream of 6 partitions; three
// consumers (each with its own connection, through its own proxy) share
// the replica queue on PostgreSQL. Midway one consumer's connection is cut
// (it reconnects) and another is killed mid-batch: its connection is cut
// for good and it is stopped without being able to settle or release
// anything, and a fourth consumer replaces it. When the replica equals the
// master row by row:
//
//   - a PostgreSQL trigger on the replica table has never seen a row's
//     revision go down (the revision guard never let an older event
//     overwrite a newer one);
//   - first deliveries of each row arrived in revision order across all
//     consumers (the partitions and their leases keep per-key order; only
//     the killed consumer's unsettled events come again, as redeliveries);
//   - the stale events the guard dropped are counted and reported.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	testenv.Slow(t, "a convergence run with a crash takeover (about 15 s)")
	ctx := t.Context()
	b := setup(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	config := func(url string) *nats.Config {
		c := b.config(url)
		c.Partitions = 6
		c.PartitionKey = cqrsync.PartitionKey
		c.Logger = quiet
		return c
	}

	masterDB := cqrsynctesting.OpenSQLite(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, val INTEGER NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	replicaDB := cqrsynctesting.OpenPostgres(t,
		`CREATE TABLE item_copy (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, val BIGINT NOT NULL,
			cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMPTZ NOT NULL)`,
		`CREATE TABLE regressions (id BIGINT, old_revision INTEGER, new_revision INTEGER)`,
		`CREATE FUNCTION record_regression() RETURNS trigger AS $$
		BEGIN
			IF NEW.cqrs_revision < OLD.cqrs_revision THEN
				INSERT INTO regressions VALUES (OLD.id, OLD.cqrs_revision, NEW.cqrs_revision);
			END IF;
			RETURN NEW;
		END $$ LANGUAGE plpgsql`,
		`CREATE TRIGGER item_copy_regression BEFORE UPDATE ON item_copy FOR EACH ROW EXECUTE FUNCTION record_regression()`)

	pub := open(t, config(b.url))
	relay, err := outbox.NewRelay(databasesql.New(masterDB, sqldialect.SQLite()), &outbox.Config{Publisher: pub, BatchSize: 50, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	master, err := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.SQLite()), &cqrsync.MasterConfig{Notify: relay.Notify, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "item", Table: "item"}); err != nil {
		t.Fatal(err)
	}
	replica, err := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.Postgres()), &cqrsync.ReplicaConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "item", Table: "item_copy"}); err != nil {
		t.Fatal(err)
	}

	const queue = "scaleout"
	order := newOrderCheck()
	stale := &staleCount{}
	type member struct {
		proxy *cqrsynctesting.Proxy
		tr    *nats.Transport
		sub   *recordingSubscriber
		c     *cqrsync.Consumer
	}
	start := func() *member {
		p, u := b.proxied(t)
		tr := open(t, config(u))
		sub := &recordingSubscriber{Transport: tr, check: order, gate: newGate()}
		c, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
			Replica: replica, Subscriber: sub, Publisher: tr,
			Queue: queue, Workers: 3, BatchSize: 20, Logger: quiet, Hooks: stale,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Stop() })
		return &member{p, tr, sub, c}
	}
	members := []*member{start(), start(), start()}
	b.waitSpread(t, queue, 6, 3)
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer relay.Stop()

	const writers, opsPerWriter, keys = 4, 150, 60
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	halfway := make(chan struct{})
	var once sync.Once
	var atHalf sync.WaitGroup
	atHalf.Add(writers)
	for w := range writers {
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
		wg.Go(func() {
			for op := range opsPerWriter {
				if op == opsPerWriter/2 {
					atHalf.Done()
					atHalf.Wait()
					once.Do(func() { close(halfway) })
				}
				if err := workload.RandomChange(ctx, masterDB, master, r, keys); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	<-halfway
	// The relay may lag behind the writers: wait (while they go on) until
	// every consumer has had events of its partitions.
	cqrsynctesting.Eventually(t, 30*time.Second, "every consumer to receive events: the partitions are shared", func() bool {
		for _, m := range members {
			if m.c.Stats().Received == 0 {
				return false
			}
		}
		return true
	})
	members[0].proxy.Drop() // a network blip: it reconnects
	killed := members[1]
	// Mid-batch: its acks stop going out, and it is killed once it holds
	// an applied, unacknowledged batch.
	killed.sub.gate.close()
	select {
	case <-killed.sub.gate.blocked:
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer to kill never acked anything in 30s")
	}
	killed.proxy.Cut() // a crash: nothing it holds is settled or released
	killed.sub.gate.fail()
	if err := killed.c.Stop(); err != nil {
		t.Logf("stopping the killed consumer: %v", err)
	}
	_ = killed.tr.Close()
	members = append(members, start())
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("workload: %v", err)
	}

	want := rowsOf(t, masterDB, "SELECT id, name, val, cqrs_revision FROM item")
	if len(want) == 0 {
		t.Fatal("the workload left no rows; the comparison would prove nothing")
	}
	var last string
	cqrsynctesting.Eventually(t, 60*time.Second, "the replica to equal the master", func() bool {
		got := rowsOf(t, replicaDB, "SELECT id, name, val, cqrs_revision FROM item_copy")
		want = rowsOf(t, masterDB, "SELECT id, name, val, cqrs_revision FROM item")
		last = diffRows(want, got)
		return last == ""
	})
	var regressions int
	if err := replicaDB.QueryRowContext(ctx, "SELECT count(*) FROM regressions").Scan(&regressions); err != nil {
		t.Fatal(err)
	}
	if regressions != 0 {
		t.Errorf("the replica saw %d updates that lowered a row's revision", regressions)
	}
	firsts, redeliveries, violations := order.result()
	if len(violations) > 0 {
		t.Errorf("%d first deliveries arrived after a newer revision of their row: %v", len(violations), violations[:min(len(violations), 10)])
	}
	t.Logf("%d rows converged; %d first deliveries in per-row order, %d redeliveries, %d stale events dropped by the revision guard",
		len(want), firsts, redeliveries, stale.n.Load())
}

// waitSpread waits until the partitions of queue are leased by owners
// distinct subscriptions, as evenly as they go.
func (b *testBundle) waitSpread(t *testing.T, queue string, partitions, owners int) {
	t.Helper()
	nc, err := natsgo.Connect(b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(t.Context(), b.exchange+"_leases")
	if err != nil {
		t.Fatal(err)
	}
	cqrsynctesting.Eventually(t, 30*time.Second, "the partitions to spread over the consumers", func() bool {
		per := map[string]int{}
		for k := range partitions {
			e, err := kv.Get(t.Context(), fmt.Sprintf("l.%s.%d", queue, k))
			if err != nil {
				return false
			}
			per[string(e.Value())]++
		}
		if len(per) != owners {
			return false
		}
		for _, n := range per {
			if n > (partitions+owners-1)/owners {
				return false
			}
		}
		return true
	})
}

func rowsOf(t *testing.T, db *sql.DB, query string) map[int64]string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id, val, rev int64
		var name string
		if err := rows.Scan(&id, &name, &val, &rev); err != nil {
			t.Fatal(err)
		}
		out[id] = fmt.Sprintf("%s/%d@%d", name, val, rev)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// diffRows names the first difference between want and got, or "".
func diffRows(want, got map[int64]string) string {
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			return fmt.Sprintf("row %d: master %q, replica %q", id, w, g)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			return fmt.Sprintf("row %d on the replica (%q), not on the master", id, g)
		}
	}
	return ""
}

// staleCount counts the events the revision guard dropped as stale.
type staleCount struct {
	hook.Nop
	n atomic.Int64
}

func (s *staleCount) OnApply(_ context.Context, e hook.Apply) { s.n.Add(int64(e.Stale)) }

// orderCheck records, across every consumer, the revisions of each row's
// first deliveries in the order they arrive.
type orderCheck struct {
	mu           sync.Mutex
	last         map[string]int64
	firsts       int
	redeliveries int
	violations   []string
}

func newOrderCheck() *orderCheck { return &orderCheck{last: map[string]int64{}} }

func (o *orderCheck) see(d *transport.Delivery) {
	p, err := cqrsync.DecodePayload(d.Body, time.Now())
	if err != nil {
		return
	}
	rev, err := p.Revision()
	if err != nil {
		return
	}
	key := fmt.Sprintf("%s/%v", p.CQRSID, p.InstancePK)
	o.mu.Lock()
	defer o.mu.Unlock()
	if d.Attempt > 1 {
		o.redeliveries++
		return
	}
	o.firsts++
	if last, ok := o.last[key]; ok && rev < last {
		o.violations = append(o.violations, fmt.Sprintf("%s: revision %d after %d", key, rev, last))
	}
	o.last[key] = max(o.last[key], rev)
}

func (o *orderCheck) result() (firsts, redeliveries int, violations []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.firsts, o.redeliveries, o.violations
}

// gate holds a subscription's acks once closed, and fails them once
// failed: a consumer killed between its commit and its ack.
type gate struct {
	closed, failed chan struct{}
	blocked        chan struct{} // closed when an ack waits at the closed gate
	once           [3]sync.Once
}

func newGate() *gate {
	return &gate{closed: make(chan struct{}), failed: make(chan struct{}), blocked: make(chan struct{})}
}

func (g *gate) close() { g.once[0].Do(func() { close(g.closed) }) }
func (g *gate) fail()  { g.once[1].Do(func() { close(g.failed) }) }

// pass returns an error when the ack must not go out.
func (g *gate) pass() error {
	select {
	case <-g.closed:
	default:
		return nil
	}
	g.once[2].Do(func() { close(g.blocked) })
	<-g.failed
	return errors.New("killed")
}

// recordingSubscriber passes every delivery to an orderCheck on its way,
// and every ack through a gate.
type recordingSubscriber struct {
	*nats.Transport
	check *orderCheck
	gate  *gate
}

func (r *recordingSubscriber) Subscribe(ctx context.Context, p *transport.SubscribeParams) (transport.Subscription, error) {
	s, err := r.Transport.Subscribe(ctx, p)
	if err != nil {
		return nil, err
	}
	rs := &recordingSubscription{Subscription: s, out: make(chan transport.Delivery), gate: r.gate, closed: make(chan struct{})}
	go func() {
		defer close(rs.out)
		for d := range s.Deliveries() {
			r.check.see(&d)
			select {
			case rs.out <- d:
			case <-rs.closed: // unsettled: the inner Close returns it
			}
		}
	}()
	return rs, nil
}

type recordingSubscription struct {
	transport.Subscription
	out    chan transport.Delivery
	gate   *gate
	closed chan struct{}
	once   sync.Once
}

func (r *recordingSubscription) Close() error {
	r.once.Do(func() { close(r.closed) })
	return r.Subscription.Close()
}

func (r *recordingSubscription) Ack(ctx context.Context, ids ...uint64) error {
	if err := r.gate.pass(); err != nil {
		return err
	}
	return r.Subscription.Ack(ctx, ids...)
}

func (r *recordingSubscription) Deliveries() <-chan transport.Delivery { return r.out }

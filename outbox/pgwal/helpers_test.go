package pgwal_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox/pgwal"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const itemDDL = `CREATE TABLE item (id BIGINT PRIMARY KEY, name TEXT NOT NULL, plan TEXT,
	cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ NULL)`

// openMaster migrates the database at url, creates the item table (when
// create) and returns it with a master in the given outbox mode.
func openMaster(ctx context.Context, url string, mode cqrsync.OutboxMode, create bool, cfg cqrsync.MasterConfig) (*sql.DB, *cqrsync.Master[*sql.Tx], error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, nil, err
	}
	if create {
		if err := sqldialect.Postgres().Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
			return nil, nil, err
		}
		if _, err := db.ExecContext(ctx, itemDDL); err != nil {
			return nil, nil, err
		}
	}
	cfg.Outbox = mode
	master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.Postgres()), &cfg)
	if err != nil {
		return nil, nil, err
	}
	err = master.Register(&cqrsync.MasterModel{CQRSID: "item", Table: "item", TrackedFields: []string{"plan"}})
	return db, master, err
}

// write creates (rev < 0) or updates row id in its own transaction.
func write(ctx context.Context, db *sql.DB, master *cqrsync.Master[*sql.Tx], id int64, create bool) error {
	return cqrsync.RunTx(ctx, db, master, func(tx *sql.Tx) error {
		if create {
			return master.Insert(ctx, tx, "item", map[string]any{"id": id, "name": "n" + strconv.FormatInt(id, 10), "plan": "free"})
		}
		return master.UpdateRow(ctx, tx, "item", id, map[string]any{"name": "changed"})
	})
}

// walRelay starts a WAL relay on a new slot and publication of the
// database at url (dropped with the database), publishing to pub.
func walRelay(t *testing.T, url, slot string, pub transport.Publisher, mutate func(*pgwal.Config)) *pgwal.Relay {
	t.Helper()
	cfg := &pgwal.Config{
		ConnString: url, Slot: slot, Publication: slot, Publisher: pub,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, StatusInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(cfg)
	}
	r, err := pgwal.NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	return r
}

// started waits until r streams its slot.
func started(t *testing.T, r *pgwal.Relay) {
	t.Helper()
	select {
	case <-r.Started():
	case <-time.After(30 * time.Second):
		t.Fatal("the WAL relay did not start streaming within 30 s")
	}
}

// receive collects deliveries of sub as "pk@revision", in arrival order,
// acknowledging them, until done says the list is complete.
func receive(t *testing.T, sub transport.Subscription, done func(got []string) bool) []string {
	t.Helper()
	var got []string
	timeout := time.After(90 * time.Second)
	for !done(got) {
		select {
		case d := <-sub.Deliveries():
			p, err := cqrsync.DecodePayload(d.Body, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			rev, _ := p.Revision()
			got = append(got, fmt.Sprintf("%v@%d", p.InstancePK, rev))
			if err := sub.Ack(t.Context(), d.ID); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("timed out after receiving %d events (%d distinct): %v", len(got), uniqueCount(got), got)
		}
	}
	return got
}

// atLeast is a receive condition: n deliveries.
func atLeast(n int) func([]string) bool { return func(got []string) bool { return len(got) >= n } }

// all is a receive condition: every revision of want's keys, at least once.
func all(want map[int64]int64) func([]string) bool {
	total := 0
	for _, rev := range want {
		total += int(rev) + 1
	}
	return func(got []string) bool { return uniqueCount(got) >= total }
}

// checkComplete checks that got (from receive, duplicates allowed) holds
// every revision 0..want[pk] of every key, and that each key's revisions,
// repeats of ones seen before left out, arrive in increasing order.
func checkComplete(t *testing.T, got []string, want map[int64]int64) {
	t.Helper()
	seen := map[int64][]int64{}
	last := map[int64]int64{}
	for _, g := range got {
		pk, rev := splitEvent(t, g)
		if slices.Contains(seen[pk], rev) {
			continue // a duplicate after a crash
		}
		if prev, ok := last[pk]; ok && rev < prev {
			t.Errorf("key %d: revision %d arrived after %d: per-key order broken (%v)", pk, rev, prev, got)
		}
		last[pk] = rev
		seen[pk] = append(seen[pk], rev)
	}
	for pk, top := range want {
		for rev := int64(0); rev <= top; rev++ {
			if !slices.Contains(seen[pk], rev) {
				t.Errorf("key %d: revision %d was never published (lost)", pk, rev)
			}
		}
	}
}

// uniqueCount is how many distinct events got holds.
func uniqueCount(got []string) int {
	s := slices.Clone(got)
	slices.Sort(s)
	return len(slices.Compact(s))
}

func splitEvent(t *testing.T, e string) (int64, int64) {
	t.Helper()
	pk, rev, _ := strings.Cut(e, "@")
	p, err1 := strconv.ParseInt(pk, 10, 64)
	r, err2 := strconv.ParseInt(rev, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad event %q", e)
	}
	return p, r
}

// revisions reads every item's current revision: what the master
// committed, whatever its writers were told.
func revisions(t *testing.T, db *sql.DB) map[int64]int64 {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT id, cqrs_revision FROM item")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var id, rev int64
		if err := rows.Scan(&id, &rev); err != nil {
			t.Fatal(err)
		}
		out[id] = rev
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rabbit is an exchange and queue of their own on the test RabbitMQ,
// deleted when the test ends.
type rabbit struct {
	url, exchange, queue string
}

func newRabbit(t *testing.T) *rabbit {
	t.Helper()
	r := &rabbit{url: testenv.AMQPURL(t), exchange: cqrsynctesting.UniqueName("walx_"), queue: cqrsynctesting.UniqueName("walq_")}
	t.Cleanup(func() {
		conn, err := amqp.Dial(r.url)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(r.queue, false, false, false)
			_, _ = ch.QueueDelete(transport.DeadLetterQueue(r.queue), false, false, false)
			_ = ch.ExchangeDelete(r.exchange, false, false)
		}
	})
	return r
}

// transport opens a RabbitMQ transport on the exchange through url (the
// broker's, or a proxy's), closed when the test ends.
func (r *rabbit) transport(t *testing.T, url string) *rabbitmq.Transport {
	t.Helper()
	tr, err := rabbitmq.New(t.Context(), &rabbitmq.Config{
		URL: url, Exchange: r.exchange, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ReconnectBackoff: rabbitmq.Backoff{Min: 5 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// subscribe binds the queue to item and returns its subscription.
func (r *rabbit) subscribe(t *testing.T) transport.Subscription {
	t.Helper()
	sub, err := r.transport(t, r.url).Subscribe(t.Context(), &transport.SubscribeParams{Queue: r.queue, CQRSIDs: []string{"item"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// memoryQueue returns an in-memory broker with the queue "q" bound to
// item, its subscription and a publisher, closed when the test ends.
func memoryQueue(t *testing.T) (*memory.Broker, transport.Subscription, transport.Publisher) {
	t.Helper()
	broker := memory.NewBroker(nil)
	sub, err := broker.Subscriber().Subscribe(t.Context(), &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"item"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	pub := broker.Publisher()
	t.Cleanup(func() { _ = pub.Close() })
	return broker, sub, pub
}

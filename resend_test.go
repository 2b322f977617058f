package cqrsync_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// dropping is a publisher that loses the events it is told to, between
// the relay and the broker.
type dropping struct {
	transport.Publisher
	mu      sync.Mutex
	drop    map[[2]int64]bool // (pk, revision) of the events to lose
	dropped int
}

func (d *dropping) Publish(ctx context.Context, msgs []transport.Message) error {
	kept := msgs[:0:0]
	for _, m := range msgs {
		var p struct {
			PK   int64 `json:"instance_pk"`
			Data struct {
				Rev int64 `json:"cqrs_revision"`
			} `json:"instance_data"`
		}
		d.mu.Lock()
		lose := json.Unmarshal(m.Body, &p) == nil && m.Queue == "" && d.drop[[2]int64{p.PK, p.Data.Rev}]
		if lose {
			d.dropped++
		}
		d.mu.Unlock()
		if !lose {
			kept = append(kept, m)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return d.Publisher.Publish(ctx, kept)
}

// TestSelfHealing: events lost on purpose between a PostgreSQL master and
// a MariaDB replica over RabbitMQ — for key 1 its revisions 1 and 3 (the
// last), for key 2 its revision 1 and its DELETE. The revision gap the
// replica sees at revision 2 makes it ask the master, whose Resender sends
// the current row, or the DELETE of a key gone, to that replica alone:
// the replica repairs itself without an operator.
func TestSelfHealing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	amqpURL := testenv.AMQPURL(t)
	exchange := cqrsynctesting.UniqueName("cqrsynctest_heal_x_")
	replicaQueue := cqrsynctesting.UniqueName("cqrsynctest_heal_r_")
	masterQueue := cqrsynctesting.UniqueName("cqrsynctest_heal_m_")
	replicaTr := newRabbitTransport(t, amqpURL, exchange, replicaQueue)
	masterTr := newRabbitTransport(t, amqpURL, exchange, masterQueue)

	masterDB := cqrsynctesting.OpenPostgres(t, `CREATE TABLE heal_item (id BIGINT PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`)
	replicaDB := cqrsynctesting.OpenMySQL(t, `CREATE TABLE heal_item (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL,
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME(6) NOT NULL)`)

	lossy := &dropping{Publisher: masterTr, drop: map[[2]int64]bool{{1, 1}: true, {1, 3}: true, {2, 1}: true, {2, 3}: true}}
	relay, err := outbox.NewRelay(databasesql.New(masterDB, sqldialect.Postgres()), &outbox.Config{Publisher: lossy, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	master, err := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.Postgres()), &cqrsync.MasterConfig{Relay: relay, ResendQueue: masterQueue, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "heal_item", Table: "heal_item"}); err != nil {
		t.Fatal(err)
	}
	resender, err := cqrsync.NewResender(master, &cqrsync.ResenderConfig{Subscriber: masterTr, Queue: masterQueue, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := resender.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resender.Stop() })
	<-resender.Started()

	replica, err := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.MySQL()), &cqrsync.ReplicaConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "heal_item", Table: "heal_item"}); err != nil {
		t.Fatal(err)
	}
	c := runConsumer(t, &cqrsync.ConsumerConfig{Replica: replica, Subscriber: replicaTr, Publisher: replicaTr, Queue: replicaQueue, Logger: quiet})

	// Every change is captured before the relay runs, so the master's rows
	// are final when the requests come.
	tx := func(fn func(tx *sql.Tx) error) {
		t.Helper()
		if err := cqrsync.RunTx(ctx, masterDB, master, fn); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []int64{1, 2} {
		tx(func(tx *sql.Tx) error {
			return master.Insert(ctx, tx, "heal_item", map[string]any{"id": id, "name": "v0"})
		})
		for _, name := range []string{"v1", "v2"} {
			tx(func(tx *sql.Tx) error {
				return master.UpdateRow(ctx, tx, "heal_item", id, map[string]any{"name": name})
			})
		}
	}
	tx(func(tx *sql.Tx) error {
		return master.UpdateRow(ctx, tx, "heal_item", int64(1), map[string]any{"name": "final"})
	})
	tx(func(tx *sql.Tx) error { return master.Delete(ctx, tx, "heal_item", int64(2)) })
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop() })

	cqrsynctesting.Eventually(t, 30*time.Second, "the replica to repair key 1 and drop key 2", func() bool {
		var name string
		var rev int
		err1 := replicaDB.QueryRowContext(ctx, "SELECT name, cqrs_revision FROM heal_item WHERE id = 1").Scan(&name, &rev)
		var n int
		err2 := replicaDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM heal_item WHERE id = 2").Scan(&n)
		return err1 == nil && err2 == nil && name == "final" && rev == 3 && n == 0
	})
	lossy.mu.Lock()
	dropped := lossy.dropped
	lossy.mu.Unlock()
	if dropped != 4 {
		t.Fatalf("the test lost %d events, want 4", dropped)
	}
	if st := c.Stats(); st.ResendsAsked != 2 {
		t.Fatalf("the consumer asked %d resends, want 2 (one per key): %+v", st.ResendsAsked, st)
	}
	if _, err := cqrsync.NewResender(master, &cqrsync.ResenderConfig{Subscriber: masterTr, Queue: "bad.queue"}); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("NewResender with a bad queue: %v", err)
	}
}

// TestResendRequests: a dead-lettered event, and a key first seen past
// revision 0, make the consumer ask the master named in the event's
// HeaderResendQueue — once per key within ResendInterval; an event
// without the header (a Django master's) or one that answered a request
// asks nothing.
func TestResendRequests(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE heal_item (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (name <> 'bad'),
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`)
	replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), &cqrsync.ReplicaConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "heal_item", Table: "heal_item"}); err != nil {
		t.Fatal(err)
	}
	broker := memory.NewBroker(nil)
	if err := broker.DeclareQueue("master_q", cqrsync.ResendCQRSID); err != nil {
		t.Fatal(err)
	}
	pub := broker.Publisher()
	defer pub.Close()
	c := runConsumer(t, &cqrsync.ConsumerConfig{Replica: replica, Subscriber: broker.Subscriber(), Publisher: pub, Queue: "replica_q",
		Retry: cqrsync.RetryPolicy{MaxRetries: -1}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	body := func(id, rev int, name string) []byte {
		return fmt.Appendf(nil, `{"signal_type":"SAVE","cqrs_id":"heal_item","instance_data":{"id":%d,"name":%q,"cqrs_revision":%d,"cqrs_updated":"2024-01-01 00:00:00+00:00"},"previous_data":null,"instance_pk":%d,"correlation_id":null,"retries":0,"expires":null,"meta":{}}`, id, name, rev, id)
	}
	fromMaster := map[string]string{cqrsync.HeaderResendQueue: "master_q"}
	msgs := []transport.Message{
		{CQRSID: "heal_item", Body: body(5, 0, "bad"), Headers: fromMaster},                                                                          // dead letter: asks
		{CQRSID: "heal_item", Body: body(5, 1, "bad"), Headers: fromMaster},                                                                          // same key again: rate-limited
		{CQRSID: "heal_item", Body: body(6, 0, "bad")},                                                                                               // a Django master's: asks nothing
		{CQRSID: "heal_item", Body: body(7, 3, "late"), Headers: fromMaster},                                                                         // first seen at 3: asks
		{CQRSID: "heal_item", Body: body(8, 0, "bad"), Headers: map[string]string{cqrsync.HeaderResendQueue: "master_q", cqrsync.HeaderResent: "1"}}, // an answer: asks nothing
		{CQRSID: "heal_item", Body: body(9, 0, "fine"), Headers: fromMaster},                                                                         // nothing wrong
	}
	if err := pub.Publish(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	cqrsynctesting.Eventually(t, 10*time.Second, "every event applied or dead-lettered", func() bool {
		st := c.Stats()
		return st.DeadLettered == 4 && st.Applied == 2
	})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.ResendsAsked != 2 || broker.QueueLen("master_q") != 2 {
		t.Fatalf("resend requests: %d asked, %d in the master's queue; want 2: %+v", st.ResendsAsked, broker.QueueLen("master_q"), st)
	}
}

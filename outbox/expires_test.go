package outbox_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// TestRelaySetsExpiresAtPublish: an event captured with a 2 s TTL waits in
// the outbox through a 4 s broker outage. It is published with expires =
// publish time + 2 s, every other byte as captured, and a replica applies
// it (with expires set at capture, it arrived expired and was
// dead-lettered).
func TestRelaySetsExpiresAtPublish(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	captured := time.Date(2026, 5, 1, 12, 0, 0, 700_000_000, time.UTC)
	clock := cqrsynctesting.NewClock(captured)

	masterDB := cqrsynctesting.OpenSQLite(t, `CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	var down sync.Mutex // held: the broker refuses every message
	outage := true
	broker := memory.NewBroker(&memory.Config{FailPublish: func(*transport.Message) error {
		down.Lock()
		defer down.Unlock()
		if outage {
			return errors.New("broker down")
		}
		return nil
	}})
	for _, q := range []string{"billing", "audit"} { // audit: a copy the test reads
		if err := broker.DeclareQueue(q, "account"); err != nil {
			t.Fatal(err)
		}
	}
	pub := broker.Publisher()
	t.Cleanup(func() { _ = pub.Close() })
	relay, err := outbox.NewRelay(databasesql.New(masterDB, sqldialect.SQLite()), &outbox.Config{Publisher: pub, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	master, err := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.SQLite()), &cqrsync.MasterConfig{MessageTTL: 2 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account", Fields: []string{"id", "name"}}); err != nil {
		t.Fatal(err)
	}
	tx, err := masterDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Insert(ctx, tx, "account", map[string]any{"id": 1, "name": "Ada"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := masterDB.QueryRowContext(ctx, "SELECT body FROM cqrs_outbox").Scan(&stored); err != nil {
		t.Fatal(err)
	}

	clock.Set(captured.Add(time.Second))
	if _, err := relay.RunOnce(ctx); err == nil {
		t.Fatal("RunOnce published while the broker was down")
	}
	publishedAt := captured.Add(4 * time.Second)
	clock.Set(publishedAt)
	down.Lock()
	outage = false
	down.Unlock()
	if n, err := relay.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("RunOnce after the outage = %d, %v; want the event published", n, err)
	}

	// The replica receives it just after publish, past the capture-time
	// expiry (12:00:02).
	replicaDB := cqrsynctesting.OpenSQLite(t, `CREATE TABLE account_copy (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`)
	replica, err := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "account", Table: "account_copy"}); err != nil {
		t.Fatal(err)
	}
	sub := broker.Subscriber()
	t.Cleanup(func() { _ = sub.Close() })
	consumer, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: sub, Publisher: pub, Queue: "billing",
		Now: func() time.Time { return publishedAt.Add(500 * time.Millisecond) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := consumer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = consumer.Stop() })
	cqrsynctesting.Eventually(t, 10*time.Second, "the event to be settled", func() bool {
		st := consumer.Stats()
		return st.Applied+st.DeadLettered > 0
	})
	if st := consumer.Stats(); st.Applied != 1 || st.DeadLettered != 0 {
		t.Fatalf("consumer stats %+v: want the event applied, not dead-lettered as expired", st)
	}

	audit, err := sub.Subscribe(ctx, &transport.SubscribeParams{Queue: "audit", CQRSIDs: []string{"account"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = audit.Close() })
	body := (<-audit.Deliveries()).Body
	const wantExpires = `"expires":"2026-05-01T12:00:06+00:00"`
	if !bytes.Contains(body, []byte(wantExpires)) {
		t.Fatalf("published body %s: want %s (publish time + TTL)", body, wantExpires)
	}
	want := bytes.Replace(stored, []byte(`"expires":"2026-05-01T12:00:02+00:00"`), []byte(wantExpires), 1)
	if !bytes.Equal(body, want) {
		t.Fatalf("published body differs from the captured one beyond expires:\n got %s\nwant %s", body, want)
	}
}

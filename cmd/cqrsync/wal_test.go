package main_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
)

// TestWALRelayCommand runs a master with outbox: wal through the binary:
// outbox status before the slot exists, the relay streaming SYNCs from the
// write-ahead log, status with and without a relay (and its warning),
// drop-slot.
func TestWALRelayCommand(t *testing.T) {
	t.Parallel()
	mq := newBroker(t)
	queue := mq.queue()
	dsn := cqrsynctesting.PostgresDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	execSQL(t, db, `CREATE TABLE account (id INT PRIMARY KEY, name TEXT NOT NULL, cqrs_revision INT NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`,
		`INSERT INTO account SELECT i, 'n' || i, 0, now() FROM generate_series(1, 5) i`)
	slot := cqrsynctesting.UniqueName("slot_")
	master := newService(t, fmt.Sprintf("database: {url: '%s'}\ntransport: {url: '%s', exchange: %s}\nmaster: {outbox: wal, wal_slot: %s, wal_publication: %s}\nmasters:\n  - {cqrs_id: account, table: account}\n",
		dsn, mq.url, mq.exchange, slot, slot))
	master.run(t, "", "migrate").ok(t)
	mq.bind(t, queue, "account")

	r := master.run(t, "", "outbox", "status")
	if r.ok(t); !strings.Contains(r.out, "slot "+slot+": does not exist") {
		t.Fatalf("status before the relay: %q", r.out)
	}
	relay := master.start(t, "relay")
	relay.waitFor(t, "relaying the write-ahead log to the broker (slot "+slot+")")
	r = master.run(t, "", "sync", "-c", "account")
	if r.ok(t); !strings.Contains(r.errOut, "the events are in the write-ahead log") {
		t.Fatalf("sync: %q", r.errOut)
	}
	eventually(t, "the relay to publish the SYNCs", func() bool { return mq.depth(t, queue) == 5 })
	r = master.run(t, "", "outbox", "status")
	if r.ok(t); !strings.Contains(r.out, "a relay streams it") || r.errOut != "" {
		t.Fatalf("status with the relay: %q %q", r.out, r.errOut)
	}
	if code, errOut := relay.terminate(t); code != 0 || !strings.Contains(errOut, "relay stopped: 5 event(s) published") {
		t.Fatalf("relay after SIGTERM: exit %d\n%s", code, errOut)
	}
	eventually(t, "the slot released", func() bool {
		r = master.run(t, "", "outbox", "status", "--json")
		return strings.Contains(r.out, `"active":false`)
	})
	r = master.run(t, "", "outbox", "status")
	if r.ok(t); !strings.Contains(r.out, "no relay streams it") || !strings.Contains(r.errOut, "PostgreSQL keeps all WAL") {
		t.Fatalf("status without a relay: %q %q", r.out, r.errOut)
	}
	master.run(t, "", "outbox", "drop-slot").ok(t)
	if r = master.run(t, "", "outbox", "status"); !strings.Contains(r.out, "does not exist") {
		t.Fatalf("status after drop-slot: %q", r.out)
	}
}

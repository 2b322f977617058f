package outbox_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// masterDB is a master database the fault tests run against.
type masterDB struct {
	name    string
	dialect sqldialect.Dialect
	driver  string
	// newDSN returns the DSN of an isolated, empty database (a file, a
	// schema or a database of its own), dropped when the test ends.
	newDSN func(t *testing.T) string
	// concurrentWriters is false where the database has one writer at a
	// time (SQLite), so interleaved transactions cannot happen.
	concurrentWriters bool
	// timestamp is the column type for cqrs_updated.
	timestamp string
}

func sqliteMaster() masterDB {
	return masterDB{
		name: "sqlite", dialect: sqldialect.SQLite(), driver: "sqlite", timestamp: "DATETIME",
		newDSN: func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "master.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
		},
	}
}

func TestOutboxFaultsSQLite(t *testing.T) {
	t.Parallel()
	runOutboxFaults(t, sqliteMaster())
}

const itemTable = "item"

// openMaster opens dsn, migrates it and creates the item table.
func openMaster(ctx context.Context, m masterDB, dsn string, create bool) (*sql.DB, *cqrsync.Master[*sql.Tx], error) {
	db, err := sql.Open(m.driver, dsn)
	if err != nil {
		return nil, nil, err
	}
	if create {
		if err := m.dialect.Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
			return nil, nil, err
		}
		q := m.dialect.QuoteIdent
		ddl := fmt.Sprintf("CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY, %s VARCHAR(100) NOT NULL, %s INTEGER NOT NULL DEFAULT 0, %s %s NULL)",
			q(itemTable), q("id"), q("name"), q("cqrs_revision"), q("cqrs_updated"), m.timestamp)
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", ddl, err)
		}
	}
	master, err := cqrsync.NewMaster(databasesql.New(db, m.dialect), nil)
	if err != nil {
		return nil, nil, err
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "item", Table: itemTable}); err != nil {
		return nil, nil, err
	}
	return db, master, nil
}

// write inserts (or updates) row id in its own transaction and captures it.
func write(ctx context.Context, m masterDB, db *sql.DB, master *cqrsync.Master[*sql.Tx], id int64, name string, create bool) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	q, p := m.dialect.QuoteIdent, m.dialect.Placeholder
	if create {
		_, err = tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, %s)", q(itemTable), q("id"), q("name"), p(1), p(2)), id, name)
		if err == nil {
			err = master.Create(ctx, tx, "item", id)
		}
	} else {
		_, err = tx.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s = %s", q(itemTable), q("name"), p(1), q("id"), p(2)), name, id)
		if err == nil {
			err = master.Update(ctx, tx, "item", id)
		}
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

// The child process of the SIGKILL test: it commits one change and waits
// to be killed, with no relay running.
func init() {
	if os.Getenv("CQRSYNC_OUTBOX_CHILD") == "" {
		return
	}
	m := map[string]masterDB{"sqlite": sqliteMaster()}[os.Getenv("CQRSYNC_OUTBOX_CHILD")]
	for _, extra := range extraMasters {
		if extra.name == os.Getenv("CQRSYNC_OUTBOX_CHILD") {
			m = extra
		}
	}
	ctx := context.Background()
	db, master, err := openMaster(ctx, m, os.Getenv("CQRSYNC_OUTBOX_DSN"), false)
	if err == nil {
		err = write(ctx, m, db, master, 7, "written by the child", true)
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("committed")
	select {} // killed here, right after commit
}

// extraMasters are the server databases registered by integration tests,
// so the child process can find them by name.
var extraMasters []masterDB

type faultBundle struct {
	m      masterDB
	dsn    string
	db     *sql.DB
	master *cqrsync.Master[*sql.Tx]
	broker *memory.Broker
	sub    transport.Subscription
	down   atomic.Bool
}

func setupFaults(t *testing.T, m masterDB) *faultBundle {
	t.Helper()
	b := &faultBundle{m: m, dsn: m.newDSN(t)}
	var err error
	b.db, b.master, err = openMaster(t.Context(), m, b.dsn, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.db.Close() })
	b.broker = memory.NewBroker(&memory.Config{FailPublish: func(*transport.Message) error {
		if b.down.Load() {
			return errors.New("broker unreachable")
		}
		return nil
	}})
	b.sub, err = b.broker.Subscriber().Subscribe(t.Context(), &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"item"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.sub.Close() })
	return b
}

func (b *faultBundle) relay(t *testing.T, cfg outbox.Config) *outbox.Relay {
	t.Helper()
	pub := b.broker.Publisher()
	cfg.Publisher = pub
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 20*time.Millisecond
	cfg.PollInterval = cmpOr(cfg.PollInterval, 5*time.Millisecond)
	r, err := outbox.NewRelay(databasesql.New(b.db, b.m.dialect), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(); _ = pub.Close() })
	return r
}

func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// receive collects n events as (pk, revision) strings, in arrival order.
func (b *faultBundle) receive(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case d := <-b.sub.Deliveries():
			p, err := cqrsync.DecodePayload(d.Body, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			rev, _ := p.Revision()
			got = append(got, fmt.Sprintf("%v@%d", p.InstancePK, rev))
			_ = b.sub.Ack(t.Context(), d.ID)
		case <-timeout:
			t.Fatalf("received %d of %d events: %v", len(got), n, got)
		}
	}
	return got
}

func runOutboxFaults(t *testing.T, m masterDB) {
	t.Run("KilledRightAfterCommit", func(t *testing.T) {
		t.Parallel()
		b := setupFaults(t, m)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CQRSYNC_OUTBOX_CHILD="+m.name, "CQRSYNC_OUTBOX_DSN="+b.dsn)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		_ = cmd.Process.Kill() // SIGKILL: no deferred code, no graceful anything
		_ = cmd.Wait()
		if strings.TrimSpace(line) != "committed" {
			t.Fatalf("child said %q", line)
		}
		b.relay(t, outbox.Config{})
		if got := b.receive(t, 1); got[0] != "7@0" {
			t.Fatalf("after restart got %v, want the child's create", got)
		}
	})

	t.Run("BrokerDownAtCommit", func(t *testing.T) {
		t.Parallel()
		b := setupFaults(t, m)
		b.down.Store(true)
		b.relay(t, outbox.Config{})
		for id := int64(1); id <= 5; id++ {
			if err := write(t.Context(), m, b.db, b.master, id, "v0", true); err != nil {
				t.Fatal(err)
			}
		}
		for rev := 1; rev <= 3; rev++ {
			for id := int64(1); id <= 5; id++ {
				if err := write(t.Context(), m, b.db, b.master, id, fmt.Sprintf("v%d", rev), false); err != nil {
					t.Fatal(err)
				}
			}
		}
		st, err := m.dialect.OutboxStats(t.Context(), sqldialect.FromSQL(b.db))
		if err != nil || st.Rows != 20 {
			t.Fatalf("backlog while the broker is down = %+v, %v; want 20", st, err)
		}
		b.down.Store(false)
		got := b.receive(t, 20)
		last := map[string]int{}
		for _, ev := range got {
			pk, revText, _ := strings.Cut(ev, "@")
			var rev int
			fmt.Sscan(revText, &rev)
			if prev, ok := last[pk]; ok && rev != prev+1 {
				t.Fatalf("row %s: revision %d after %d; want revision order per row (%v)", pk, rev, prev, got)
			}
			last[pk] = rev
		}
	})

	t.Run("RollbackDeliversNothing", func(t *testing.T) {
		t.Parallel()
		b := setupFaults(t, m)
		relay := b.relay(t, outbox.Config{})
		tx, err := b.db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		q, p := m.dialect.QuoteIdent, m.dialect.Placeholder
		if _, err := tx.Exec(fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, 'x')", q(itemTable), q("id"), q("name"), p(1)), 1); err != nil {
			t.Fatal(err)
		}
		if err := b.master.Create(t.Context(), tx, "item", 1); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback()
		if err := write(t.Context(), m, b.db, b.master, 2, "marker", true); err != nil {
			t.Fatal(err)
		}
		if got := b.receive(t, 1); got[0] != "2@0" {
			t.Fatalf("got %v, want only the marker: the rolled-back create must not be published", got)
		}
		waitPublished(t, 1, relay)
	})

	t.Run("InterleavedSlowTransactions", func(t *testing.T) {
		t.Parallel()
		if !m.concurrentWriters {
			t.Skipf("%s has one writer at a time: transactions cannot interleave", m.name)
		}
		b := setupFaults(t, m)
		b.relay(t, outbox.Config{})
		// Slow transactions take outbox IDs early and commit late, while
		// fast ones with later IDs commit and are relayed first: the classic
		// race where a cursor-based relay skips the slow ones.
		const slow, fast = 5, 20
		release := make(chan struct{})
		var releaseOnce sync.Once
		// On failure too: open transactions would block the database's
		// cleanup (DROP waits for their locks).
		t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
		var wg sync.WaitGroup
		errs := make(chan error, slow+fast)
		for i := range slow {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := int64(100 + i)
				tx, err := b.db.BeginTx(context.Background(), nil)
				if err != nil {
					errs <- err
					return
				}
				defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
				q, p := m.dialect.QuoteIdent, m.dialect.Placeholder
				if _, err := tx.Exec(fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, 'slow')", q(itemTable), q("id"), q("name"), p(1)), id); err != nil {
					errs <- err
					return
				}
				if err := b.master.Create(context.Background(), tx, "item", id); err != nil {
					errs <- err
					return
				}
				<-release
				errs <- tx.Commit()
			}()
		}
		for i := range fast {
			if err := write(t.Context(), m, b.db, b.master, int64(200+i), "fast", true); err != nil {
				t.Fatal(err)
			}
		}
		first := b.receive(t, fast)
		releaseOnce.Do(func() { close(release) })
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		all := append(first, b.receive(t, slow)...)
		seen := map[string]bool{}
		for _, ev := range all {
			if seen[ev] {
				t.Fatalf("%s delivered twice", ev)
			}
			seen[ev] = true
		}
		select {
		case d := <-b.sub.Deliveries():
			t.Fatalf("unexpected extra delivery %s", d.Body)
		case <-time.After(100 * time.Millisecond):
		}
	})

	t.Run("TwoRelays", func(t *testing.T) {
		t.Parallel()
		b := setupFaults(t, m)
		const n = 200
		for id := int64(1); id <= n; id++ {
			if err := write(t.Context(), m, b.db, b.master, id, "x", true); err != nil {
				t.Fatal(err)
			}
		}
		r1 := b.relay(t, outbox.Config{BatchSize: 7})
		r2 := b.relay(t, outbox.Config{BatchSize: 7})
		got := b.receive(t, n)
		seen := map[string]bool{}
		for _, ev := range got {
			if seen[ev] {
				t.Fatalf("%s delivered twice", ev)
			}
			seen[ev] = true
		}
		waitPublished(t, n, r1, r2)
	})
}

// waitPublished waits until the relays together count n published events
// (they count after deleting, a moment after the broker has the events).
func waitPublished(t *testing.T, n int64, relays ...*outbox.Relay) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var sum int64
		for _, r := range relays {
			sum += r.Published()
		}
		if sum == n {
			return
		}
		if sum > n || time.Now().After(deadline) {
			t.Fatalf("relays published %d events, want %d", sum, n)
		}
		time.Sleep(time.Millisecond)
	}
}

package pgwal_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox/pgwal"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// The child process of TestWALFaults/RelayKilled: a WAL relay to RabbitMQ
// that prints "streaming" and runs until it is killed.
func init() {
	if os.Getenv("CQRSYNC_PGWAL_CHILD") == "" {
		return
	}
	ctx := context.Background()
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	tr, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: os.Getenv("CQRSYNC_PGWAL_AMQP"), Exchange: os.Getenv("CQRSYNC_PGWAL_EXCHANGE"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fail(err)
	}
	slot := os.Getenv("CQRSYNC_PGWAL_SLOT")
	r, err := pgwal.NewRelay(&pgwal.Config{ConnString: os.Getenv("CQRSYNC_PGWAL_URL"), Slot: slot, Publication: slot, Publisher: tr, BatchSize: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fail(err)
	}
	if err := r.Start(ctx); err != nil {
		fail(err)
	}
	<-r.Started()
	fmt.Println("streaming")
	select {} // killed here, mid-stream
}

// faultRun is one fault test's master and workload: creates of keys
// 1..keys (phase 1), then, once the fault happened, updates of every key,
// rounds times (phase 2). Errors of single writes are ignored: the table
// tells what committed.
type faultRun struct {
	db      *sql.DB
	master  *cqrsync.Master[*sql.Tx]
	keys    int
	rounds  int
	faulted chan struct{}
	done    chan struct{}
}

func startWorkload(t *testing.T, url string, create bool) *faultRun {
	t.Helper()
	db, master, err := openMaster(t.Context(), url, cqrsync.OutboxWAL, create, cqrsync.MasterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &faultRun{db: db, master: master, keys: 300, rounds: 2, faulted: make(chan struct{}), done: make(chan struct{})}
}

// run writes phase 1, waits for the fault, writes phase 2.
func (f *faultRun) run(ctx context.Context) {
	defer close(f.done)
	for id := int64(1); id <= int64(f.keys); id++ {
		_ = write(ctx, f.db, f.master, id, true)
	}
	select {
	case <-f.faulted:
	case <-ctx.Done():
		return
	}
	for range f.rounds {
		for id := int64(1); id <= int64(f.keys); id++ {
			_ = write(ctx, f.db, f.master, id, false)
		}
	}
}

// rabbitWorkload is a fault test on RabbitMQ: a database of its own with
// the workload's master, and a queue bound to item.
func rabbitWorkload(t *testing.T) (string, *rabbit, transport.Subscription, *faultRun) {
	t.Helper()
	url := cqrsynctesting.PostgresDatabase(t)
	rb := newRabbit(t)
	return url, rb, rb.subscribe(t), startWorkload(t, url, true)
}

// finish waits for the workload and checks that every committed change
// reached sub, in order per key. got holds what was received before.
func (f *faultRun) finish(t *testing.T, sub transport.Subscription, got []string) {
	t.Helper()
	<-f.done
	want := revisions(t, f.db)
	if len(want) < 40 {
		// Writes fail while the server restarts; the 40 received before
		// the fault were committed.
		t.Fatalf("only %d of %d keys were created: the workload failed", len(want), f.keys)
	}
	complete := all(want)
	got = append(got, receive(t, sub, func(more []string) bool { return complete(append(got, more...)) })...)
	checkComplete(t, got, want)
}

func TestWALFaults(t *testing.T) {
	t.Parallel()
	testenv.Slow(t, "three fault scenarios with a few thousand events each, and a private PostgreSQL")

	t.Run("RelayKilled", func(t *testing.T) {
		t.Parallel()
		url, rb, sub, f := rabbitWorkload(t)
		slot := cqrsynctesting.UniqueName("slot_")
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CQRSYNC_PGWAL_CHILD=1", "CQRSYNC_PGWAL_URL="+url, "CQRSYNC_PGWAL_SLOT="+slot,
			"CQRSYNC_PGWAL_AMQP="+rb.url, "CQRSYNC_PGWAL_EXCHANGE="+rb.exchange)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		said := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(out).ReadString('\n')
			said <- strings.TrimSpace(line)
		}()
		select {
		case line := <-said:
			if line != "streaming" {
				t.Fatalf("child said %q", line)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the child relay did not start streaming within 30s (is wal_level logical? see docs/wal.md)")
		}
		go f.run(t.Context())
		got := receive(t, sub, atLeast(40))
		_ = cmd.Process.Kill() // SIGKILL, mid-stream: no stop, no last status
		_ = cmd.Wait()
		close(f.faulted)
		t.Logf("killed the relay after %d events", len(got))
		walRelay(t, url, slot, rb.transport(t, rb.url), nil)
		f.finish(t, sub, got)
	})

	t.Run("BrokerCut", func(t *testing.T) {
		t.Parallel()
		url, rb, sub, f := rabbitWorkload(t)
		proxy := cqrsynctesting.NewProxy(t, hostOf(t, rb.url))
		var logs cqrsynctesting.SyncBuffer
		r := walRelay(t, url, cqrsynctesting.UniqueName("slot_"), rb.transport(t, proxy.URL(t, rb.url)), func(c *pgwal.Config) {
			c.PublishTimeout = time.Second
			c.BatchSize = 10
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		started(t, r)
		go f.run(t.Context())
		got := receive(t, sub, atLeast(40))
		proxy.Cut()
		if !logs.WaitFor("relay failed", 30*time.Second, nil) {
			t.Fatalf("the relay did not notice the broker gone; it logged:\n%s", logs.String())
		}
		close(f.faulted)
		proxy.Restore()
		f.finish(t, sub, got)
	})

	t.Run("PostgresRestart", func(t *testing.T) {
		t.Parallel()
		pg := cqrsynctesting.StartPostgres(t)
		_, sub, pub := memoryQueue(t)
		f := startWorkload(t, pg.URL, true)
		var logs cqrsynctesting.SyncBuffer
		r := walRelay(t, pg.URL, "cqrsync", pub, func(c *pgwal.Config) {
			c.BatchSize = 10
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		started(t, r)
		var wg sync.WaitGroup
		wg.Go(func() { f.run(t.Context()) })
		got := receive(t, sub, atLeast(40))
		pg.Restart() // mid-stream: the relay's and the writers' connections end
		close(f.faulted)
		f.finish(t, sub, got)
		wg.Wait()
		if !strings.Contains(logs.String(), "relay failed") {
			t.Errorf("the relay did not notice the restart; it logged:\n%s\nserver log:\n%s", logs.String(), pg.Log())
		}
	})
}

// hostOf returns the host:port of a URL.
func hostOf(t *testing.T, raw string) string {
	t.Helper()
	_, rest, ok := strings.Cut(raw, "@")
	if !ok {
		_, rest, _ = strings.Cut(raw, "://")
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

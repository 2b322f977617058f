package pgwal_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox/pgwal"
	"github.com/cqrsync/cqrsync/transport"
)

// stallingPublisher holds its first stalls Publish calls for stall before
// passing them on, as a slow broker does.
type stallingPublisher struct {
	transport.Publisher
	stalls atomic.Int32
	stall  time.Duration
}

func (p *stallingPublisher) Publish(ctx context.Context, msgs []transport.Message) error {
	if p.stalls.Add(-1) >= 0 {
		select {
		case <-time.After(p.stall):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p.Publisher.Publish(ctx, msgs)
}

// TestWALOutlastsSlowHandOff: while the broker takes several times the
// server's wal_sender_timeout to confirm a batch, and a backlog larger than
// the relay holds in memory waits behind it, the relay keeps its
// replication connection alive: it publishes every event once, moves the
// slot past them, and never restarts (a restart would stream the backlog
// again from the slot's position, duplicating it, and a backlog that always
// takes longer than the timeout would loop forever).
func TestWALOutlastsSlowHandOff(t *testing.T) {
	t.Parallel()
	testenv.Slow(t, "a broker stalling 6 s per case, and a private PostgreSQL each")
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{
		{"StatusIntervalBelowTimeout", 100 * time.Millisecond},
		// The server's timeout is what counts: a StatusInterval above it
		// must not end the connection either.
		{"StatusIntervalAboveTimeout", 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			outlastSlowHandOff(t, tc.interval)
		})
	}
}

// outlastSlowHandOff runs TestWALOutlastsSlowHandOff with the relay's
// StatusInterval set to interval.
func outlastSlowHandOff(t *testing.T, interval time.Duration) {
	const (
		timeout = time.Second
		txs     = 120 // one event each: far more than the hand-off channel, the ready events and a batch hold
	)
	// A private server: the shared one may lack wal_level = logical, and
	// must not be reconfigured.
	pg := cqrsynctesting.StartPostgres(t)
	base := pg.URL
	db, master, err := openMaster(t.Context(), base, cqrsync.OutboxWAL, true, cqrsync.MasterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	// The short timeout applies to the relay's connection only.
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("options", "-c wal_sender_timeout="+timeout.String())
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgconn reads + as itself
	relayURL := u.String()
	assertSetting(t, relayURL, "wal_sender_timeout", "1s")

	_, sub, pub := memoryQueue(t)
	slow := &stallingPublisher{Publisher: pub, stall: 3 * timeout}
	slow.stalls.Store(2)
	var logs cqrsynctesting.SyncBuffer
	slot := cqrsynctesting.UniqueName("slot_")
	r := walRelay(t, relayURL, slot, slow, func(c *pgwal.Config) {
		c.BatchSize = 5
		c.StatusInterval = interval
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the relay logged:\n%s\nthe server logged:\n%s", logs.String(), pg.Log())
		}
	})
	started(t, r)

	for id := int64(1); id <= txs; id++ {
		if err := write(t.Context(), db, master, id, true); err != nil {
			t.Fatal(err)
		}
	}
	want := revisions(t, db)
	got := receive(t, sub, all(want))
	checkComplete(t, got, want)

	if n := r.Published(); n != txs {
		t.Errorf("published %d events for %d captured: the backlog was streamed again", n, txs)
	}
	if len(got) != txs {
		t.Errorf("received %d events for %d captured", len(got), txs)
	}
	var flushed string
	cqrsynctesting.Eventually(t, 10*time.Second, "the slot confirmed past the last event", func() bool {
		err := db.QueryRowContext(t.Context(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn >= $2::pg_lsn",
			slot, r.ConfirmedLSN()).Scan(&flushed)
		return err == nil && r.ConfirmedLSN() != "0/0"
	})
	if strings.Contains(logs.String(), "relay failed") {
		t.Errorf("the relay lost its replication connection while the broker was slow; it logged:\n%s", logs.String())
	}
}

// assertSetting checks that a connection to url sees setting's value:
// the test is void if the server ignored it.
func assertSetting(t *testing.T, url, setting, want string) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.QueryRowContext(t.Context(), "SHOW "+setting).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s is %s on the relay's connection, want %s", setting, got, want)
	}
}

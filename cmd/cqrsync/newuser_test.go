package main_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
)

// TestConsumePoolBounded: a consumer with 4 workers applying one event per
// transaction keeps its connections open instead of opening a new one per
// transaction (Go's default keeps 2 idle): the connections it opens through
// a counting proxy stay within workers + the tombstone purge + slack.
func TestConsumePoolBounded(t *testing.T) {
	t.Parallel()
	const n, workers = 800, 4
	mq := newBroker(t)
	queue := mq.queue()
	dsn, db := postgres(t, `CREATE TABLE account (id INT PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INT NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`,
		`CREATE TABLE account_copy (id INT PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INT NOT NULL, cqrs_updated TIMESTAMPTZ NOT NULL)`,
		fmt.Sprintf(`INSERT INTO account SELECT i, 'n' || i, 0, now() FROM generate_series(1, %d) i`, n))
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := cqrsynctesting.NewProxy(t, u.Host)
	transport := fmt.Sprintf("transport: {url: '%s', exchange: %s}\n", mq.url, mq.exchange)
	master := newService(t, fmt.Sprintf("database: {url: '%s'}\n%smasters:\n  - {cqrs_id: account, table: account}\n", dsn, transport))
	replica := newService(t, fmt.Sprintf("database: {url: '%s'}\n%squeue: %s\nreplicas:\n  - {cqrs_id: account, table: account_copy}\n",
		proxy.URL(t, dsn), transport, queue))
	master.run(t, "", "migrate").ok(t)

	consumer := replica.start(t, "consume", "-w", fmt.Sprint(workers), "--batch", "1")
	consumer.waitFor(t, "consuming queue "+queue)
	before := proxy.Accepted()
	master.run(t, "", "sync", "-c", "account", "-f", "{}").ok(t)
	eventually(t, "the replica to apply every SYNC", func() bool {
		return countDB(t, db, "SELECT COUNT(*) FROM account_copy") == n
	})
	opened := proxy.Accepted() - before
	code, errOut := consumer.terminate(t)
	if code != 0 || !strings.Contains(errOut, fmt.Sprintf("%d applied", n)) {
		t.Fatalf("consume: exit %d\n%s", code, errOut)
	}
	if limit := workers + 2; opened > limit {
		t.Fatalf("consume -w %d opened %d database connections for %d events; want at most %d", workers, opened, n, limit)
	}
}

package tools_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// verifyItemMaster and verifyItemReplica are the tables of the drift check's
// integration test: a PostgreSQL master and a MariaDB replica.
const (
	verifyItemMaster = `CREATE TABLE verify_item (
		id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ NOT NULL DEFAULT now(),
		name VARCHAR(200) NOT NULL, qty INTEGER NOT NULL, price NUMERIC(12,2), note TEXT)`
	verifyItemReplica = `CREATE TABLE verify_item (
		id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME(6) NOT NULL,
		name VARCHAR(200) NOT NULL, qty INTEGER NOT NULL, price DECIMAL(12,2), note TEXT)`
)

// rabbitPair is a PostgreSQL master relaying through a RabbitMQ exchange of
// its own to a MariaDB replica consuming a queue of its own.
type rabbitPair struct {
	masterDB, replicaDB *sql.DB
	master              *cqrsync.Master[*sql.Tx]
	replica             *cqrsync.Replica
	queue               string
}

func setupRabbitPair(t *testing.T) *rabbitPair {
	t.Helper()
	ctx := t.Context()
	url := testenv.AMQPURL(t)
	p := &rabbitPair{queue: cqrsynctesting.UniqueName("cqrsynctest_verify_q_")}
	exchange := cqrsynctesting.UniqueName("cqrsynctest_verify_x_")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	p.masterDB = cqrsynctesting.OpenPostgres(t, verifyItemMaster)
	p.replicaDB = cqrsynctesting.OpenMySQL(t, verifyItemReplica)
	cqrsynctesting.CleanupRabbitMQ(t, url, exchange, p.queue) // after tr.Close
	tr, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: url, Exchange: exchange, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	mdrv := databasesql.New(p.masterDB, sqldialect.Postgres())
	if err := sqldialect.Postgres().Migrate(ctx, sqldialect.FromSQL(p.masterDB)); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(mdrv, &outbox.Config{Publisher: tr, Logger: quiet, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if p.master, err = cqrsync.NewMaster(mdrv, &cqrsync.MasterConfig{Notify: relay.Notify, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	if err := p.master.Register(&cqrsync.MasterModel{CQRSID: "verify_item", Table: "verify_item"}); err != nil {
		t.Fatal(err)
	}
	if p.replica, err = cqrsync.NewReplica(databasesql.New(p.replicaDB, sqldialect.MySQL()), &cqrsync.ReplicaConfig{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	if err := p.replica.Register(&cqrsync.ReplicaModel{CQRSID: "verify_item", Table: "verify_item"}); err != nil {
		t.Fatal(err)
	}
	c, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{Replica: p.replica, Subscriber: tr, Publisher: tr, Queue: p.queue, Workers: 2, BatchSize: 100, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	<-c.Started()
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop() })
	return p
}

// create inserts rows 1..n on the master and captures them, in one
// transaction.
func (p *rabbitPair) create(t *testing.T, n int) {
	t.Helper()
	ctx := t.Context()
	tx, err := p.masterDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO verify_item (id, name, qty, price, note)
		SELECT g, 'item ' || g, g % 17, (g * 1.25)::numeric(12,2), CASE WHEN g % 3 = 0 THEN NULL ELSE repeat('n', g % 40) END
		FROM generate_series(1, $1) AS g`, n); err != nil {
		t.Fatal(err)
	}
	keys := make([]any, n)
	for i := range keys {
		keys[i] = int64(i + 1)
	}
	if err := p.master.Create(ctx, tx, "verify_item", keys...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func (p *rabbitPair) replicaRows(t *testing.T) int {
	var n int
	if err := p.replicaDB.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM verify_item").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// revisionDiff runs the revision-based diff pipe (diff-master |
// diff-replica) and returns the keys it would resync.
func (p *rabbitPair) revisionDiff(t *testing.T) []any {
	t.Helper()
	var stream bytes.Buffer
	if err := tools.DiffMaster(t.Context(), p.master, sqldialect.FromSQL(p.masterDB), "verify_item", &stream, nil); err != nil {
		t.Fatal(err)
	}
	keys, err := tools.DiffReplica(t.Context(), p.replica, sqldialect.FromSQL(p.replicaDB), p.queue, &stream, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestVerifyPostgresMariaDBRabbitMQ converges a MariaDB replica with a
// PostgreSQL master through RabbitMQ, then edits replica rows by hand
// (revision untouched), deletes one and adds one: the revision diff sees
// only the deleted row, Verify reports exactly the four keys, its repair
// converges the replica again and Verify then reports nothing.
func TestVerifyPostgresMariaDBRabbitMQ(t *testing.T) {
	t.Parallel()
	p := setupRabbitPair(t)
	ctx := t.Context()
	const n = 500
	p.create(t, n)
	cqrsynctesting.Eventually(t, 60*time.Second, "the replica holds every row", func() bool { return p.replicaRows(t) == n })

	m := tools.NewLocalMaster(p.master, sqldialect.FromSQL(p.masterDB))
	r := tools.NewLocalReplica(p.replica, sqldialect.FromSQL(p.replicaDB))
	opts := &tools.VerifyOpts{Sizes: []int{128, 16}}
	rep, err := tools.Verify(ctx, m, r, "verify_item", opts)
	if err != nil || !rep.Clean() {
		t.Fatalf("converged replica: verify = %+v, %v; want clean", rep, err)
	}
	if fmt.Sprint(rep.Fields) != "[id cqrs_revision name qty price note]" {
		t.Fatalf("fields compared = %v", rep.Fields)
	}

	for _, q := range []string{
		`UPDATE verify_item SET name = 'edited by hand' WHERE id = 17`,
		`UPDATE verify_item SET price = price + 0.01 WHERE id = 250`,
		`UPDATE verify_item SET note = NULL WHERE id = 499`,
		`DELETE FROM verify_item WHERE id = 42`,
		`INSERT INTO verify_item (id, cqrs_revision, cqrs_updated, name, qty) VALUES (100000, 0, '2024-01-01 00:00:00', 'replica only', 0)`,
	} {
		if _, err := p.replicaDB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if keys := p.revisionDiff(t); fmt.Sprint(keys) != "[42]" {
		t.Fatalf("revision diff = %v; want [42] alone (it cannot see content edits)", keys)
	}
	rep, err = tools.Verify(ctx, m, r, "verify_item", opts)
	if err != nil {
		t.Fatal(err)
	}
	const want = "differ [17 250 499] [[name] [price] [note]] missing [42] extra [100000]"
	if got := fmt.Sprintf("differ %v %v missing %v extra %v", rep.Differ, rep.DifferFields, rep.Missing, rep.Extra); got != want {
		t.Fatalf("verify = %s\nwant     %s", got, want)
	}
	if rep.MasterRows >= 2*n || rep.ReplicaRows >= 2*n {
		t.Fatalf("rows read: master %d, replica %d; want the table once plus the narrowed ranges", rep.MasterRows, rep.ReplicaRows)
	}

	opts.Repair, opts.Queue = true, p.queue
	rep, err = tools.Verify(ctx, m, r, "verify_item", opts)
	if err != nil || rep.Resynced != 4 || rep.Deleted != 1 {
		t.Fatalf("repair = %+v, %v; want 4 resynced and 1 deleted", rep, err)
	}
	opts.Repair = false
	cqrsynctesting.Eventually(t, 60*time.Second, "verify finds nothing after the repair", func() bool {
		rep, err := tools.Verify(ctx, m, r, "verify_item", opts)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Clean()
	})
	if keys := p.revisionDiff(t); len(keys) != 0 {
		t.Fatalf("revision diff after the repair = %v", keys)
	}
}

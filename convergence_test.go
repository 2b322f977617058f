package cqrsync_test

import (
	"cmp"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting/workload"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// convergenceSeeds returns the seeds of a test's runs on one replica
// database: runs random ones, one under -short; CQRSYNC_CONVERGENCE_SEEDS
// overrides how many, CQRSYNC_CONVERGENCE_SEED replays one run.
func convergenceSeeds(t *testing.T, runs int) []uint64 {
	if s := os.Getenv("CQRSYNC_CONVERGENCE_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return []uint64{seed}
	}
	if testing.Short() {
		runs = 1
	}
	n, _ := strconv.Atoi(os.Getenv("CQRSYNC_CONVERGENCE_SEEDS"))
	seeds := make([]uint64, cmp.Or(n, runs))
	for i := range seeds {
		seeds[i] = rand.Uint64()
	}
	return seeds
}

// convergencePostgres and convergenceMySQL are the replica databases the
// convergence tests run on.
func convergencePostgres() replicaDB {
	return replicaDB{dialect: sqldialect.Postgres(), open: func(t *testing.T) *sql.DB { return cqrsynctesting.OpenPostgres(t) }, timestamp: "TIMESTAMPTZ"}
}

func convergenceMySQL() replicaDB {
	return replicaDB{dialect: sqldialect.MySQL(), open: func(t *testing.T) *sql.DB { return cqrsynctesting.OpenMySQL(t) }, timestamp: "DATETIME(6)"}
}

func TestConvergencePostgres(t *testing.T) {
	t.Parallel()
	runConvergence(t, convergencePostgres(), 10, false)
}

func TestConvergenceMySQL(t *testing.T) {
	t.Parallel()
	runConvergence(t, convergenceMySQL(), 10, false)
}

// TestConvergenceSyncPostgres and TestConvergenceSyncMySQL run the
// workload while SyncQuery (what `cqrsync sync` runs) re-sends every row
// over and over: a SYNC read before a change may be delivered after it,
// and must not leave the replica behind the master.
func TestConvergenceSyncPostgres(t *testing.T) {
	t.Parallel()
	runConvergence(t, convergencePostgres(), 3, true)
}

func TestConvergenceSyncMySQL(t *testing.T) {
	t.Parallel()
	runConvergence(t, convergenceMySQL(), 3, true)
}

// runConvergence runs the workload with runs seeds (see convergenceSeeds),
// with SyncQuery passes alongside the writers when syncing.
func runConvergence(t *testing.T, rdb replicaDB, runs int, syncing bool) {
	for _, seed := range convergenceSeeds(t, runs) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			// Sequential: the runs share two cores with everything else.
			convergeOnce(t, rdb, seed, syncing)
		})
	}
}

// convergeOnce runs one seeded workload: several writers create, update,
// delete and re-create rows on a master (and, when syncing, SyncQuery
// re-sends every row in a loop until the writers are done); the relay
// publishes through a broker that duplicates and reorders; two consumers
// compete for the queue, connections are cut and one consumer is replaced
// midway. When all is drained, the replica must equal the master, row by
// row.
func convergeOnce(t *testing.T, rdb replicaDB, seed uint64, syncing bool) {
	ctx := t.Context()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+" (replay with CQRSYNC_CONVERGENCE_SEED=%d)", append(args, seed)...)
	}
	masterDB := cqrsynctesting.OpenSQLite(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, val INTEGER NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	replicaDB := rdb.open(t)
	q := rdb.dialect.QuoteIdent
	if _, err := replicaDB.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY, %s VARCHAR(100) NOT NULL, %s BIGINT NOT NULL, %s INTEGER NOT NULL, %s %s NOT NULL)",
		q("item_copy"), q("id"), q("name"), q("val"), q("cqrs_revision"), q("cqrs_updated"), rdb.timestamp)); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	broker := memory.NewBroker(&memory.Config{Chaos: &memory.Chaos{DuplicateRate: 0.1, ReorderRate: 0.2, ReorderWindow: 6, Seed: int64(seed >> 1)}})
	pub := broker.Publisher()
	defer pub.Close()

	relay, err := outbox.NewRelay(databasesql.New(masterDB, sqldialect.SQLite()), &outbox.Config{Publisher: pub, BatchSize: 25, Logger: quiet})
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
	replica, err := cqrsync.NewReplica(databasesql.New(replicaDB, rdb.dialect), &cqrsync.ReplicaConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "item", Table: "item_copy"}); err != nil {
		t.Fatal(err)
	}
	const queue = "convergence"
	if err := broker.DeclareQueue(queue, "item"); err != nil {
		t.Fatal(err)
	}
	newConsumer := func(workers, batch int) *cqrsync.Consumer {
		c, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
			Replica: replica, Subscriber: broker.Subscriber(), Publisher: pub, Queue: queue,
			Workers: workers, BatchSize: batch, Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1, c2 := newConsumer(3, 20), newConsumer(2, 7)
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer relay.Stop()

	// The workload: writers on a shared key space of 40 ids.
	const writers, opsPerWriter, keys = 4, 75, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	halfway := make(chan struct{})
	var once sync.Once
	var done sync.WaitGroup
	done.Add(writers)
	for w := range writers {
		r := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for op := range opsPerWriter {
				if op == opsPerWriter/2 {
					done.Done()
					done.Wait()
					once.Do(func() { close(halfway) })
				}
				if err := workload.RandomChange(ctx, masterDB, master, r, keys); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	writing := make(chan struct{})
	var syncer sync.WaitGroup
	if syncing {
		// No last pass after the writers: it would repair what an
		// earlier SYNC broke.
		syncer.Go(func() {
			for passes := 0; ; passes++ {
				select {
				case <-writing:
					if passes == 0 {
						errs <- errors.New("the writers finished before one SyncQuery pass")
					}
					return
				default:
				}
				if _, err := master.SyncQuery(ctx, sqldialect.FromSQL(masterDB), "item", &cqrsync.SyncOpts{BatchSize: 7}); err != nil {
					errs <- fmt.Errorf("SyncQuery: %w", err)
					return
				}
			}
		})
	}
	// Midway: cut every connection, stop one consumer and start another.
	<-halfway
	broker.CutConnections()
	if err := c1.Stop(); err != nil {
		fail("stopping consumer 1: %v", err)
	}
	c3 := newConsumer(2, 13)
	wg.Wait()
	close(writing)
	syncer.Wait()
	close(errs)
	for err := range errs {
		fail("workload: %v", err)
	}

	// Drained: nothing in the outbox, nothing in the queue, twice in a row.
	deadline := time.Now().Add(60 * time.Second)
	for quietRounds := 0; quietRounds < 2; {
		st, err := relay.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Rows == 0 && broker.QueueLen(queue) == 0 {
			quietRounds++
		} else {
			quietRounds = 0
		}
		if time.Now().After(deadline) {
			fail("not drained: %d events in the outbox, %d in the queue", st.Rows, broker.QueueLen(queue))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, c := range []*cqrsync.Consumer{c2, c3} {
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
	}

	want := cqrsynctesting.RowsByID(t, masterDB, "SELECT id, name, val, cqrs_revision FROM item")
	got := cqrsynctesting.RowsByID(t, replicaDB, fmt.Sprintf("SELECT %s, %s, %s, %s FROM %s", q("id"), q("name"), q("val"), q("cqrs_revision"), q("item_copy")))
	if len(want) == 0 {
		fail("the workload left no rows; the comparison would prove nothing")
	}
	for id, m := range want {
		if r, ok := got[id]; !ok || r != m {
			fail("row %d: master %q, replica %q (present %v)", id, m, r, ok)
		}
	}
	for id, r := range got {
		if _, ok := want[id]; !ok {
			fail("row %d is on the replica (%q) but not on the master", id, r)
		}
	}
}

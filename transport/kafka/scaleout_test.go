package kafka_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// TestScaleOut runs three consumer processes on one queue, one Kafka
// consumer group, while writers change rows on a master whose relay
// publishes to the same cluster. Midway every connection is cut and one
// consumer process is killed (no commit, no leave: its partitions move
// when its session expires) and replaced. When the outbox is drained the
// replica must equal the master, and the replica's applied revisions of
// every row, in commit order, must only grow: an older revision never
// overwrote a newer one. Stale drops (events that arrived after a newer
// revision, redeliveries) are counted.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t)

	masterDB := cqrsynctesting.OpenSQLite(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, val INTEGER NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	replicaDB := cqrsynctesting.OpenSQLite(t,
		`CREATE TABLE item_copy (id INTEGER PRIMARY KEY, name TEXT NOT NULL, val INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`,
		`CREATE TABLE applied (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL, rev INTEGER NOT NULL)`,
		`CREATE TRIGGER item_copy_ins AFTER INSERT ON item_copy BEGIN INSERT INTO applied (id, rev) VALUES (NEW.id, NEW.cqrs_revision); END`,
		`CREATE TRIGGER item_copy_upd AFTER UPDATE ON item_copy BEGIN INSERT INTO applied (id, rev) VALUES (NEW.id, NEW.cqrs_revision); END`,
	)

	pub := c.open(t, nil)
	relay, err := outbox.NewRelay(databasesql.New(masterDB, sqldialect.SQLite()), &outbox.Config{Publisher: pub, BatchSize: 50, Logger: quiet})
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

	type consumerProcess struct {
		c    *cqrsync.Consumer
		proc *process
	}
	start := func() consumerProcess {
		tr, proc := c.openProcess(t)
		replica := itemReplica(t, replicaDB)
		cons := startConsumer(t, &cqrsync.ConsumerConfig{
			Replica: replica, Subscriber: tr, Publisher: tr, Queue: "scaleout",
			Workers: 4, BatchSize: 20, Logger: quiet,
		})
		return consumerProcess{cons, proc}
	}
	procs := []consumerProcess{start(), start(), start()}
	adm := kadm.NewClient(newPlainClient(t, c))
	waitForMembers(t, adm, "cqrs.scaleout", 3)
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop() })

	// The workload: writers create and update rows of a shared key space.
	const writers, ops, keys = 2, 800, 60
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	halfway := make(chan struct{})
	var once sync.Once
	for w := range writers {
		r := rand.New(rand.NewPCG(uint64(w), 16))
		wg.Go(func() {
			for op := range ops {
				if op == ops/2 {
					once.Do(func() { close(halfway) })
				}
				id := int64(1 + r.IntN(keys))
				err := scaleOutOp(ctx, masterDB, master, id, r)
				// A machine this loaded can outlast SQLite's busy timeout:
				// the transaction rolled back, so try it again.
				for busy := 0; err != nil && strings.Contains(err.Error(), "SQLITE_BUSY") && busy < 10; busy++ {
					err = scaleOutOp(ctx, masterDB, master, id, r)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	<-halfway
	c.Cut()
	// Kill a member that is consuming (some hold only the queue topic's
	// partitions, where nothing is published).
	victim := -1
	cqrsynctesting.Eventually(t, 10*time.Second, "a consumer to receive events", func() bool {
		for i, p := range procs {
			if p.c.Stats().Received > 0 {
				victim = i
				return true
			}
		}
		return false
	})
	procs[victim].proc.kill()
	t.Logf("killed consumer %d after %d deliveries", victim+1, procs[victim].c.Stats().Received)
	procs = append(procs, start())
	waitForMembers(t, adm, "cqrs.scaleout", 3) // the killed member's session expired
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("workload: %v", err)
	}

	want := cqrsynctesting.RowsByID(t, masterDB, "SELECT id, name, val, cqrs_revision FROM item")
	cqrsynctesting.Eventually(t, 60*time.Second, "the replica to equal the master", func() bool {
		st, err := relay.Stats(ctx)
		if err != nil || st.Rows > 0 {
			return false
		}
		got := cqrsynctesting.RowsByID(t, replicaDB, "SELECT id, name, val, cqrs_revision FROM item_copy")
		if len(got) != len(want) {
			return false
		}
		for id, m := range want {
			if got[id] != m {
				return false
			}
		}
		return true
	})

	// Per-row order: the revisions applied to a row, in commit order.
	rows, err := replicaDB.QueryContext(ctx, "SELECT id, rev FROM applied ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	last := map[int64]int64{}
	applied := 0
	for rows.Next() {
		var id, rev int64
		if err := rows.Scan(&id, &rev); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[id]; ok && rev <= prev {
			t.Errorf("row %d: revision %d applied after revision %d", id, rev, prev)
		}
		last[id] = rev
		applied++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var stale, received int64
	for i, p := range procs {
		st := p.c.Stats()
		stale += st.Dropped
		received += st.Received
		t.Logf("consumer %d: received %d, applied %d, dropped %d, retried %d, dead-lettered %d", i+1, st.Received, st.Applied, st.Dropped, st.Retried, st.DeadLettered)
		if st.DeadLettered > 0 {
			t.Errorf("consumer %d dead-lettered %d events", i+1, st.DeadLettered)
		}
	}
	if procs[3].c.Stats().Received == 0 {
		t.Error("the replacement consumer received nothing: the killed member's partitions never moved")
	}
	busy := 0
	for _, p := range procs[:3] {
		if p.c.Stats().Received > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("only %d of the 3 first consumers received events: the group did not spread the partitions", busy)
	}
	t.Logf("%d changes, %d rows, %d revisions applied, %d deliveries, %d stale drops", writers*ops, len(want), applied, received, stale)
}

// waitForMembers waits until group is stable with n members that all have
// partitions assigned.
func waitForMembers(tb testing.TB, adm *kadm.Client, group string, n int) {
	tb.Helper()
	cqrsynctesting.Eventually(tb, 20*time.Second, fmt.Sprintf("%d members with partitions in group %s", n, group), func() bool {
		ds, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false
		}
		g, ok := ds[group]
		if !ok || g.Err != nil || g.State != "Stable" || len(g.Members) != n {
			return false
		}
		for _, m := range g.Members {
			a, ok := m.Assigned.AsConsumer()
			if !ok || len(a.Topics) == 0 {
				return false
			}
		}
		return true
	})
}

// scaleOutOp creates row id or updates it, in its own transaction.
func scaleOutOp(ctx context.Context, db *sql.DB, master *cqrsync.Master[*sql.Tx], id int64, r *rand.Rand) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := tx.ExecContext(ctx, "UPDATE item SET name = ?, val = ? WHERE id = ?", fmt.Sprintf("n%d", r.IntN(1000)), r.Int64N(1000), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO item (id, name, val) VALUES (?, ?, ?)", id, "new", 0); err != nil {
			return err
		}
		err = master.Create(ctx, tx, "item", id)
	} else {
		err = master.Update(ctx, tx, "item", id)
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

package trigger_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/capture/trigger"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// TestTriggerConvergence: concurrent writers change a trigger-captured
// table with plain SQL only (upserts, updates of one and of several rows,
// deletes and re-creations of keys, rolled-back transactions), a relay
// renders and publishes through a broker that duplicates and reorders, and
// a replica converges on the master.
func TestTriggerConvergence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		updated := map[string]string{"postgres": "TIMESTAMPTZ", "mysql": "DATETIME(6)"}[b.name]
		masterDB := b.open(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, val INTEGER NOT NULL,
			cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated `+updated+`)`)
		drv := databasesql.New(masterDB, b.dialect)
		master, err := cqrsync.NewMaster(drv, &cqrsync.MasterConfig{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		model := &cqrsync.MasterModel{CQRSID: "item", Table: "item", TrackedFields: []string{"val"}}
		if err := master.Register(model); err != nil {
			t.Fatal(err)
		}
		if err := trigger.Install(ctx, drv, model); err != nil {
			t.Fatal(err)
		}
		replicaDB := cqrsynctesting.OpenSQLite(t, `CREATE TABLE item_copy (id INTEGER PRIMARY KEY, name TEXT NOT NULL, val INTEGER NOT NULL,
			cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`)
		replica, err := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.SQLite()), &cqrsync.ReplicaConfig{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "item", Table: "item_copy"}); err != nil {
			t.Fatal(err)
		}
		broker := memory.NewBroker(&memory.Config{Chaos: &memory.Chaos{DuplicateRate: 0.1, ReorderRate: 0.2, ReorderWindow: 6, Seed: 7}})
		pub := broker.Publisher()
		defer pub.Close()
		if err := broker.DeclareQueue("replica", "item"); err != nil {
			t.Fatal(err)
		}
		consumer, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
			Replica: replica, Subscriber: broker.Subscriber(), Publisher: pub, Queue: "replica", Workers: 3, BatchSize: 10, Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := consumer.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer consumer.Stop()
		relay, err := outbox.NewRelay(drv, &outbox.Config{Publisher: pub, Renderer: master, BatchSize: 25, PollInterval: 20 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := relay.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer relay.Stop()

		const writers, ops, keys = 4, 60, 12
		var failed, done atomic.Int64
		var wg sync.WaitGroup
		for w := range writers {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			wg.Go(func() {
				for range ops {
					if err := triggerOp(ctx, b, masterDB, r, keys); err != nil {
						failed.Add(1) // a deadlock between writers: rolled back, nothing captured
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() > done.Load()/3 {
			t.Fatalf("%d of %d writes failed", failed.Load(), done.Load())
		}
		const masterRows = `SELECT id, name, val, cqrs_revision FROM item ORDER BY id`
		const replicaRows = `SELECT id, name, val, cqrs_revision FROM item_copy ORDER BY id`
		cqrsynctesting.Eventually(t, 30*time.Second, "the replica to equal the master", func() bool {
			return tableText(t, masterDB, masterRows) == tableText(t, replicaDB, replicaRows)
		})
		if tableText(t, masterDB, masterRows) == "" {
			t.Fatal("the workload left the master empty: nothing was compared")
		}
	})
}

// triggerOp makes one random change with plain SQL.
func triggerOp(ctx context.Context, b backend, db *sql.DB, r *rand.Rand, keys int) error {
	id := r.IntN(keys) + 1
	ph := b.dialect.Placeholder
	upsert := fmt.Sprintf("INSERT INTO item (id, name, val) VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, val = EXCLUDED.val", ph(1), ph(2), ph(3))
	if b.name == "mysql" {
		upsert = "INSERT INTO item (id, name, val) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name), val = VALUES(val)"
	}
	switch n := r.IntN(10); {
	case n < 3:
		_, err := db.ExecContext(ctx, upsert, id, fmt.Sprintf("n%d", r.IntN(1000)), r.IntN(100))
		return err
	case n < 5:
		_, err := db.ExecContext(ctx, "UPDATE item SET val = val + 1 WHERE id = "+ph(1), id)
		return err
	case n < 6:
		_, err := db.ExecContext(ctx, fmt.Sprintf("UPDATE item SET val = val + 1 WHERE id BETWEEN %s AND %s", ph(1), ph(2)), id, id+3)
		return err
	case n < 8:
		_, err := db.ExecContext(ctx, "DELETE FROM item WHERE id = "+ph(1), id)
		return err
	default:
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE item SET name = 'rolled back' WHERE id = "+ph(1), id); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Rollback()
	}
}

// tableText is a query's rows as text.
func tableText(t *testing.T, db *sql.DB, query string) string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, val, rev int64
		var name string
		if err := rows.Scan(&id, &name, &val, &rev); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%d %s %d %d\n", id, name, val, rev)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

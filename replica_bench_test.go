package cqrsync_test

import (
	"context"
	"fmt"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// BenchmarkReplicaApply measures issue 4 on PostgreSQL: the replica's apply
// rate through the Consumer (in-memory transport, so the database work
// dominates) with one event per transaction (BatchSize 1) and with batches
// (BatchSize 100, the default), next to a raw revision-guarded multi-row
// upsert of 100 rows per statement and transaction into the same kind of
// table, from as many connections as the consumer has workers.
//
// The events are b.N SAVEs over b.N/2 keys: every key is created
// (revision 0) and then updated once (revision 1); the raw upsert writes
// the same rows in the same order, each connection owning a share of the
// keys. The three are measured on fresh tables of the same schema; the
// raw upsert and the batched consumer take turns in rounds of a tenth of
// the events, so load from elsewhere hits both alike. Metrics:
//
//	raw_rows/s         raw multi-row upsert
//	batched_events/s   Consumer, BatchSize 100
//	single_events/s    Consumer, BatchSize 1
//	batched/raw        goal ≥ 0.50
//	batched/single     goal ≥ 10
//	ns/op              wall time per event, batched
//
// Run with a fixed count, e.g. -benchtime=10000x.
func BenchmarkReplicaApply(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("postgres/workers=%d", workers), func(b *testing.B) {
			benchReplicaApply(b, benchBackends[1], workers)
		})
	}
}

func benchReplicaApply(b *testing.B, be benchBackend, workers int) {
	replicaDDL := func(t string) string {
		return strings.Replace(be.ddl(t), "cqrs_updated TIMESTAMPTZ", "cqrs_updated TIMESTAMPTZ NOT NULL", 1)
	}
	db := be.open(b, replicaDDL("raw_item"), replicaDDL("single_item"), replicaDDL("batched_item"))
	db.SetMaxOpenConns(workers + 2)
	db.SetMaxIdleConns(workers + 2)
	ctx := b.Context()

	n := max(b.N, 2)
	keys := (n + 1) / 2
	type row struct{ id, rev int64 }
	rows := make([]row, 0, n)
	for rev := range int64(2) {
		for id := int64(1); id <= int64(keys) && len(rows) < n; id++ {
			rows = append(rows, row{id, rev})
		}
	}
	payload := strings.Repeat("r", 256)
	updated := time.Now().UTC().Truncate(time.Microsecond)
	bodies := make([][]byte, len(rows))
	for i, r := range rows {
		p := cqrsync.Payload{
			SignalType: cqrsync.SignalSave, CQRSID: "item", InstancePK: r.id,
			InstanceData: cqrsync.Object{
				{Key: "id", Value: r.id}, {Key: "cqrs_revision", Value: r.rev},
				{Key: "cqrs_updated", Value: cqrsync.FormatDateTime(updated)},
				{Key: "commit_us", Value: updated.UnixMicro()}, {Key: "payload", Value: payload},
			},
			Meta: cqrsync.Object{},
		}
		var err error
		if bodies[i], err = p.AppendJSON(nil); err != nil {
			b.Fatal(err)
		}
	}

	// raw: each connection upserts its keys (id % workers) in order, 100
	// rows per statement and transaction.
	const batch = 100
	upsertSQL := func(k int) string {
		var q strings.Builder
		q.WriteString("INSERT INTO raw_item (id, cqrs_revision, cqrs_updated, commit_us, payload) VALUES ")
		for i := range k {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "($%d,$%d,$%d,$%d,$%d)", 5*i+1, 5*i+2, 5*i+3, 5*i+4, 5*i+5)
		}
		q.WriteString(" ON CONFLICT (id) DO UPDATE SET cqrs_revision = excluded.cqrs_revision, cqrs_updated = excluded.cqrs_updated, " +
			"commit_us = excluded.commit_us, payload = excluded.payload WHERE raw_item.cqrs_revision < excluded.cqrs_revision")
		return q.String()
	}
	fullBatchSQL := upsertSQL(batch)
	rawUpsert := func(rows []row) time.Duration {
		// A statement must not name a key twice (ON CONFLICT cannot update
		// a row twice), so no batch mixes the two revisions.
		shares := make([][][]row, workers)
		for w := range shares {
			shares[w] = make([][]row, 2)
		}
		for _, r := range rows {
			w := r.id % int64(workers)
			shares[w][r.rev] = append(shares[w][r.rev], r)
		}
		return timeGoroutines(b, len(shares), func(w int) error {
			for _, share := range shares[w] {
				for len(share) > 0 {
					k := min(batch, len(share))
					chunk := share[:k]
					share = share[k:]
					q := fullBatchSQL
					if k < batch {
						q = upsertSQL(k)
					}
					args := make([]any, 0, 5*k)
					for _, r := range chunk {
						args = append(args, r.id, r.rev, updated, updated.UnixMicro(), payload)
					}
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					if _, err = tx.ExecContext(ctx, q, args...); err != nil {
						_ = tx.Rollback()
						return err
					}
					if err := tx.Commit(); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}

	// startConsumer runs a Consumer with the given batch size on a fresh
	// queue of an in-memory broker; its apply publishes events to that
	// queue and returns when the consumer has settled them, with the time
	// from publishing.
	startConsumer := func(table string, batchSize int) (apply func(first, end int) time.Duration) {
		replica, err := cqrsync.NewReplica(databasesql.New(db, be.dialect), nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "item", Table: table}); err != nil {
			b.Fatal(err)
		}
		broker := memory.NewBroker(nil)
		pub := broker.Publisher()
		b.Cleanup(func() { pub.Close() })
		queue := table + "_q"
		if err := broker.DeclareQueue(queue, "item"); err != nil {
			b.Fatal(err)
		}
		sub := broker.Subscriber()
		b.Cleanup(func() { sub.Close() })
		consumer, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
			Replica: replica, Subscriber: sub, Publisher: pub, Queue: queue,
			Workers: workers, BatchSize: batchSize,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := consumer.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = consumer.Stop() })
		return func(first, end int) time.Duration {
			msgs := make([]transport.Message, 0, end-first)
			for _, body := range bodies[first:end] {
				msgs = append(msgs, transport.Message{CQRSID: "item", Body: body})
			}
			start := time.Now()
			if err := pub.Publish(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			want := int64(end)
			for {
				st := consumer.Stats()
				if settled := st.Applied + st.Dropped; settled >= want {
					elapsed := time.Since(start)
					if st.Applied != want || st.DeadLettered+st.Retried > 0 {
						b.Fatalf("consumer: %+v, want %d applied", st, want)
					}
					return elapsed
				}
				if st.DeadLettered+st.Retried > 0 {
					b.Fatalf("consumer failed events: %+v", st)
				}
				select {
				case <-ctx.Done():
					b.Fatal(ctx.Err())
				case <-time.After(100 * time.Microsecond):
				}
			}
		}
	}

	// Warm the pool and the catalog caches.
	if _, err := db.ExecContext(ctx, "SELECT 1 FROM raw_item, single_item, batched_item LIMIT 1"); err != nil {
		b.Fatal(err)
	}
	batchedApply := startConsumer("batched_item", 100)
	singleApply := startConsumer("single_item", 1)
	b.ResetTimer()
	// The raw upsert and the batched consumer take turns, a round of
	// events each, so that load from elsewhere on the machine hits both
	// alike; the one-event-per-transaction consumer, 20-40 times slower,
	// runs once at the end.
	var raw, batched time.Duration
	round := max(1000, len(rows)/10)
	for first := 0; first < len(rows); first += round {
		end := min(len(rows), first+round)
		raw += rawUpsert(rows[first:end])
		batched += batchedApply(first, end)
	}
	single := singleApply(0, len(rows))
	b.StopTimer()
	if err := context.Cause(ctx); err != nil {
		b.Fatal(err)
	}
	rate := func(d time.Duration) float64 { return float64(len(rows)) / d.Seconds() }
	b.ReportMetric(float64(batched.Nanoseconds())/float64(len(rows)), "ns/op")
	b.ReportMetric(rate(raw), "raw_rows/s")
	b.ReportMetric(rate(batched), "batched_events/s")
	b.ReportMetric(rate(single), "single_events/s")
	b.ReportMetric(raw.Seconds()/batched.Seconds(), "batched/raw")
	b.ReportMetric(single.Seconds()/batched.Seconds(), "batched/single")
}

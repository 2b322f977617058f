package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RawLimits are the same servers' speeds without cqrsync, measured in the
// same run just before the pipeline.
type RawLimits struct {
	// InsertCommit is plain one-row INSERT + COMMIT transactions per second
	// on the master, from Writers concurrent connections.
	InsertCommit float64 `json:"master_insert_commit_per_s"`
	// Publish is messages per second the broker confirms: raw amqp091, in
	// batches of RelayBatch pipelined with deferred confirms.
	Publish float64 `json:"broker_confirmed_publish_per_s"`
	// Consume is messages per second a raw amqp091 consumer takes from a
	// full queue with the consumer's prefetch, acknowledging every BatchSize
	// with one multiple ack.
	Consume float64 `json:"broker_consume_per_s"`
	// Upsert is rows per second of plain multi-row upserts (BatchSize rows
	// per statement and transaction, revision-guarded, no tombstones) into
	// the replica from Workers concurrent connections.
	Upsert float64 `json:"replica_batched_upsert_per_s"`
	// Pipeline is messages per second of the raw pipeline, where the broker
	// implements it ([RawPipeliner]): the raw consume feeding the raw
	// upserts (Workers × BatchSize), each message acknowledged on its own.
	// It is what a consumer with no cqrsync in it reaches while the broker
	// and the replica share the machine: the drain's ceiling.
	Pipeline float64 `json:"broker_consume_replica_upsert_per_s,omitempty"`
	// InsertCommitUsage is the machine's load during the raw INSERT+COMMIT:
	// what the master write alone costs, to set the pipeline's use against.
	InsertCommitUsage Usage `json:"master_insert_commit_usage"`
	// InsertCommitStatements is where the raw INSERT+COMMIT's time went.
	InsertCommitStatements []StmtStat `json:"master_insert_commit_statements"`
	// Messages is the number of messages each broker figure moved, and
	// MessageBytes their size (an encoded event of the workload).
	Messages     int `json:"broker_messages"`
	MessageBytes int `json:"broker_message_bytes"`
}

// rawInsertCommit runs one-row INSERT + COMMIT transactions from writers
// connections for about d, and returns transactions per second.
func rawInsertCommit(ctx context.Context, db *sql.DB, d *database, table string, writers int, dur time.Duration, rowBytes int) (float64, error) {
	q := fmt.Sprintf("INSERT INTO %s (id, commit_us, payload) VALUES (%s, %s, %s)", table, d.ph(1), d.ph(2), d.ph(3))
	payload := strings.Repeat("x", rowBytes)
	var next atomic.Int64
	one := func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q, next.Add(1), time.Now().UnixMicro(), payload); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	return timeBoxed(ctx, writers, dur, func(int) (int, error) { return 1, one() })
}

// rawUpsert runs revision-guarded multi-row upserts of batch rows, one per
// transaction, from workers connections for about d, and returns rows per
// second (see rawUpserter).
func rawUpsert(ctx context.Context, db *sql.DB, d *database, table string, workers, batch int, dur time.Duration, rowBytes int) (float64, error) {
	up := newRawUpserter(db, d, table, workers, batch, rowBytes)
	return timeBoxed(ctx, workers, dur, func(w int) (int, error) { return batch, up.upsert(ctx, w, batch) })
}

// rawUpserter writes the raw upserts: revision-guarded multi-row upserts,
// one statement per transaction, with no tombstones and no cqrsync. Each
// worker cycles over its own 20 batches of keys: the first pass inserts,
// later passes update with a higher revision.
type rawUpserter struct {
	db       *sql.DB
	d        *database
	table    string
	batch    int
	payload  string
	mu       sync.Mutex
	rounds   []int
	stmts    map[int]string // by rows per statement
	keysPerW int
}

func newRawUpserter(db *sql.DB, d *database, table string, workers, batch, rowBytes int) *rawUpserter {
	return &rawUpserter{db: db, d: d, table: table, batch: batch, payload: strings.Repeat("y", rowBytes),
		rounds: make([]int, workers), stmts: map[int]string{}, keysPerW: 20}
}

var rawUpsertCols = []string{"id", "cqrs_revision", "cqrs_updated", "commit_us", "payload"}

// statement returns the upsert of n rows.
func (u *rawUpserter) statement(n int) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if q, ok := u.stmts[n]; ok {
		return q
	}
	d, table, cols := u.d, u.table, rawUpsertCols
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(cols, ", "))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range cols {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(d.ph(i*len(cols) + j + 1))
		}
		b.WriteByte(')')
	}
	if d.kind == MySQL {
		guard := table + ".cqrs_revision < VALUES(cqrs_revision)"
		b.WriteString(" ON DUPLICATE KEY UPDATE ")
		for i, c := range []string{"cqrs_updated", "commit_us", "payload", "cqrs_revision"} {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s = IF(%s, VALUES(%s), %s)", c, guard, c, c)
		}
	} else {
		fmt.Fprintf(&b, " ON CONFLICT (id) DO UPDATE SET cqrs_revision = excluded.cqrs_revision, cqrs_updated = excluded.cqrs_updated, "+
			"commit_us = excluded.commit_us, payload = excluded.payload WHERE %s.cqrs_revision < excluded.cqrs_revision", table)
	}
	u.stmts[n] = b.String()
	return u.stmts[n]
}

// upsert writes n (at most batch) rows of worker w's next batch of keys in
// one transaction.
func (u *rawUpserter) upsert(ctx context.Context, w, n int) error {
	q := u.statement(n)
	u.mu.Lock()
	r := u.rounds[w]
	u.rounds[w]++
	u.mu.Unlock()
	slot := r % u.keysPerW
	rev := r / u.keysPerW
	first := int64(w*u.keysPerW*u.batch + slot*u.batch + 1)
	args := make([]any, 0, n*len(rawUpsertCols))
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range n {
		args = append(args, first+int64(i), rev, now, now.UnixMicro(), u.payload)
	}
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// timeBoxed runs fn from n goroutines until about d has passed, after one
// untimed warm-up call each, and returns the units fn reported per second.
func timeBoxed(ctx context.Context, n int, d time.Duration, fn func(worker int) (int, error)) (float64, error) {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[w] = fn(w)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	var done atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				k, err := fn(w)
				if err != nil {
					errs[w] = err
					return
				}
				done.Add(int64(k))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return math.Round(float64(done.Load())/elapsed.Seconds()*10) / 10, nil
}

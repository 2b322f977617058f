package cqrsync_test

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// benchBackend opens a fresh, migrated database of one kind with the given
// tables, or skips the benchmark when the server is absent (testenv).
type benchBackend struct {
	name    string
	dialect sqldialect.Dialect
	open    func(b *testing.B, ddl ...string) *sql.DB
	ddl     func(table string) string
}

var benchBackends = []benchBackend{
	{
		name: "sqlite", dialect: sqldialect.SQLite(),
		open: func(b *testing.B, ddl ...string) *sql.DB { return cqrsynctesting.OpenSQLite(b, ddl...) },
		ddl: func(t string) string {
			return `CREATE TABLE ` + t + ` (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0,
				cqrs_updated DATETIME, commit_us INTEGER NOT NULL, payload TEXT NOT NULL)`
		},
	},
	{
		name: "postgres", dialect: sqldialect.Postgres(),
		open: func(b *testing.B, ddl ...string) *sql.DB { return cqrsynctesting.OpenPostgres(b, ddl...) },
		ddl: func(t string) string {
			return `CREATE TABLE ` + t + ` (id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0,
				cqrs_updated TIMESTAMPTZ, commit_us BIGINT NOT NULL, payload TEXT NOT NULL)`
		},
	},
	{
		name: "mysql", dialect: sqldialect.MySQL(),
		open: func(b *testing.B, ddl ...string) *sql.DB { return cqrsynctesting.OpenMySQL(b, ddl...) },
		ddl: func(t string) string {
			return `CREATE TABLE ` + t + ` (id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0,
				cqrs_updated DATETIME(6) NULL, commit_us BIGINT NOT NULL, payload TEXT NOT NULL) ENGINE=InnoDB`
		},
	},
}

// BenchmarkMasterCapture measures issue 3: master-side changes per second,
// one row per transaction, with the outbox (INSERT, then Master.Create,
// then COMMIT; and Master.Insert, which writes the row and captures it,
// then COMMIT) next to the same INSERT and COMMIT without it, on the same
// database in the same run, with 1 and 8 concurrent writers.
//
// The kinds of transaction run in alternating rounds (plain, create,
// insert, plain, …; b.N of each in all), so that load from elsewhere on a
// shared machine hits them alike. Metrics:
//
//	plain_tx/s    INSERT+COMMIT transactions per second
//	outbox_tx/s   INSERT+Master.Create+COMMIT transactions per second
//	outbox/plain  their ratio (issue 3's goal on PostgreSQL: ≥ 0.70)
//	insert_tx/s   Master.Insert+COMMIT transactions per second
//	insert/plain  its ratio to the plain rate
//	ns/op         wall time per outbox transaction
//
// Run with a fixed count, e.g. -benchtime=2000x, and several -count.
func BenchmarkMasterCapture(b *testing.B) {
	for _, be := range benchBackends {
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/writers=%d", be.name, writers), func(b *testing.B) {
				benchMasterCapture(b, be, writers)
			})
		}
	}
}

func benchMasterCapture(b *testing.B, be benchBackend, writers int) {
	db := be.open(b, be.ddl("plain_item"), be.ddl("captured_item"), be.ddl("inserted_item"))
	db.SetMaxOpenConns(writers + 2)
	db.SetMaxIdleConns(writers + 2)
	master, err := cqrsync.NewMaster(&cqrsync.MasterConfig{Dialect: be.dialect})
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []*cqrsync.MasterModel{{CQRSID: "item", Table: "captured_item"}, {CQRSID: "inserted", Table: "inserted_item"}} {
		if err := master.Register(m); err != nil {
			b.Fatal(err)
		}
	}
	ph := be.dialect.Placeholder
	insert := func(table string) string {
		return fmt.Sprintf("INSERT INTO %s (id, commit_us, payload) VALUES (%s, %s, %s)", table, ph(1), ph(2), ph(3))
	}
	plainSQL, capturedSQL := insert("plain_item"), insert("captured_item")
	payload := strings.Repeat("p", 256)
	ctx := b.Context()
	var nextID atomic.Int64
	// The three kinds of transaction: the plain INSERT, INSERT then
	// Master.Create, and Master.Insert.
	const (
		plainTx = iota
		createTx
		insertTx
	)
	one := func(kind int) error {
		id := nextID.Add(1)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		switch kind {
		case plainTx:
			_, err = tx.ExecContext(ctx, plainSQL, id, time.Now().UnixMicro(), payload)
		case createTx:
			if _, err = tx.ExecContext(ctx, capturedSQL, id, time.Now().UnixMicro(), payload); err == nil {
				err = master.Create(ctx, tx, "item", id)
			}
		case insertTx:
			err = master.Insert(ctx, tx, "inserted", map[string]any{"id": id, "commit_us": time.Now().UnixMicro(), "payload": payload})
		}
		if err != nil {
			return err
		}
		return tx.Commit()
	}
	// round runs n transactions of one kind from the writers and returns
	// the wall time.
	round := func(n int, kind int) time.Duration {
		var left atomic.Int64
		left.Store(int64(n))
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		start := time.Now()
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					if err := one(kind); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		return elapsed
	}
	// Warm up every path: connections, statement caches, introspection.
	for kind := range 3 {
		round(2*writers, kind)
	}

	b.ResetTimer()
	var plain, captured, inserted time.Duration
	for _, n := range splitRounds(b.N, 4) {
		plain += round(n, plainTx)
		captured += round(n, createTx)
		inserted += round(n, insertTx)
	}
	b.StopTimer()
	plainRate := float64(b.N) / plain.Seconds()
	capturedRate := float64(b.N) / captured.Seconds()
	insertedRate := float64(b.N) / inserted.Seconds()
	b.ReportMetric(float64(captured.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(plainRate, "plain_tx/s")
	b.ReportMetric(capturedRate, "outbox_tx/s")
	b.ReportMetric(capturedRate/plainRate, "outbox/plain")
	b.ReportMetric(insertedRate, "insert_tx/s")
	b.ReportMetric(insertedRate/plainRate, "insert/plain")
}

// splitRounds splits n into at most k rounds of nearly equal size.
func splitRounds(n, k int) []int {
	k = max(1, min(k, n))
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

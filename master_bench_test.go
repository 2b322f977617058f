package cqrsync_test

import (
	"context"
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
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
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
func BenchmarkMasterCapture(b *testing.B) { benchEachBackend(b, benchMasterCapture) }

// benchEachBackend runs fn as a sub-benchmark per backend with 1 and 8
// writers.
func benchEachBackend(b *testing.B, fn func(b *testing.B, be benchBackend, writers int)) {
	for _, be := range benchBackends {
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/writers=%d", be.name, writers), func(b *testing.B) { fn(b, be, writers) })
		}
	}
}

func benchMasterCapture(b *testing.B, be benchBackend, writers int) {
	db := be.open(b, be.ddl("plain_item"), be.ddl("captured_item"), be.ddl("inserted_item"))
	db.SetMaxOpenConns(writers + 2)
	db.SetMaxIdleConns(writers + 2)
	master, err := cqrsync.NewMaster(databasesql.New(db, be.dialect), nil)
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
	inTx := func(fn func(tx *sql.Tx, id int64) error) func() error {
		return func() error { return benchTx(ctx, db, nextID.Add(1), fn) }
	}
	rates := benchRounds(b, writers, []func() error{
		inTx(func(tx *sql.Tx, id int64) error {
			_, err := tx.ExecContext(ctx, plainSQL, id, time.Now().UnixMicro(), payload)
			return err
		}),
		inTx(func(tx *sql.Tx, id int64) error {
			if _, err := tx.ExecContext(ctx, capturedSQL, id, time.Now().UnixMicro(), payload); err != nil {
				return err
			}
			return master.Create(ctx, tx, "item", id)
		}),
		inTx(func(tx *sql.Tx, id int64) error {
			return master.Insert(ctx, tx, "inserted", map[string]any{"id": id, "commit_us": time.Now().UnixMicro(), "payload": payload})
		}),
	})
	b.ReportMetric(1e9/rates[1], "ns/op")
	b.ReportMetric(rates[0], "plain_tx/s")
	b.ReportMetric(rates[1], "outbox_tx/s")
	b.ReportMetric(rates[1]/rates[0], "outbox/plain")
	b.ReportMetric(rates[2], "insert_tx/s")
	b.ReportMetric(rates[2]/rates[0], "insert/plain")
}

// BenchmarkMasterCaptureUpdate is BenchmarkMasterCapture for updates of
// existing rows: the plain UPDATE+COMMIT, UPDATE then Master.Update then
// COMMIT, and Master.UpdateRow (the change and its capture in one
// statement) then COMMIT, in alternating rounds over 10,000 rows per
// table. Metrics:
//
//	plain_tx/s      UPDATE+COMMIT transactions per second
//	update/plain    UPDATE+Master.Update+COMMIT over the plain rate
//	updaterow/plain Master.UpdateRow+COMMIT over the plain rate
//	ns/op           wall time per UpdateRow transaction
func BenchmarkMasterCaptureUpdate(b *testing.B) { benchEachBackend(b, benchMasterCaptureUpdate) }

func benchMasterCaptureUpdate(b *testing.B, be benchBackend, writers int) {
	const rows = 10000
	tables := []string{"plain_item", "updated_item", "updaterow_item"}
	db := be.open(b, be.ddl(tables[0]), be.ddl(tables[1]), be.ddl(tables[2]))
	db.SetMaxOpenConns(writers + 2)
	db.SetMaxIdleConns(writers + 2)
	master, err := cqrsync.NewMaster(databasesql.New(db, be.dialect), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []*cqrsync.MasterModel{{CQRSID: "updated", Table: tables[1]}, {CQRSID: "updaterow", Table: tables[2]}} {
		if err := master.Register(m); err != nil {
			b.Fatal(err)
		}
	}
	ph := be.dialect.Placeholder
	payload := strings.Repeat("p", 256)
	ctx := b.Context()
	for _, t := range tables {
		for first := 1; first <= rows; first += 1000 {
			vals := make([]string, 0, 1000)
			for id := first; id < first+1000; id++ {
				vals = append(vals, fmt.Sprintf("(%d, 0, '%s')", id, payload))
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO "+t+" (id, commit_us, payload) VALUES "+strings.Join(vals, ", ")); err != nil {
				b.Fatal(err)
			}
		}
	}
	update := func(table string) string {
		return fmt.Sprintf("UPDATE %s SET commit_us = %s, payload = %s WHERE id = %s", table, ph(1), ph(2), ph(3))
	}
	plainSQL, updatedSQL := update(tables[0]), update(tables[1])
	var next atomic.Int64
	inTx := func(fn func(tx *sql.Tx, id int64) error) func() error {
		// Writers take the rows in turn, so no two wait for one row.
		return func() error { return benchTx(ctx, db, next.Add(1)%rows+1, fn) }
	}
	rates := benchRounds(b, writers, []func() error{
		inTx(func(tx *sql.Tx, id int64) error {
			_, err := tx.ExecContext(ctx, plainSQL, time.Now().UnixMicro(), payload, id)
			return err
		}),
		inTx(func(tx *sql.Tx, id int64) error {
			if _, err := tx.ExecContext(ctx, updatedSQL, time.Now().UnixMicro(), payload, id); err != nil {
				return err
			}
			return master.Update(ctx, tx, "updated", id)
		}),
		inTx(func(tx *sql.Tx, id int64) error {
			return master.UpdateRow(ctx, tx, "updaterow", id, map[string]any{"commit_us": time.Now().UnixMicro(), "payload": payload})
		}),
	})
	b.ReportMetric(1e9/rates[2], "ns/op")
	b.ReportMetric(rates[0], "plain_tx/s")
	b.ReportMetric(rates[1]/rates[0], "update/plain")
	b.ReportMetric(rates[2]/rates[0], "updaterow/plain")
}

// benchTx runs fn in a transaction for row id and commits it.
func benchTx(ctx context.Context, db *sql.DB, id int64, fn func(tx *sql.Tx, id int64) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx, id); err != nil {
		return err
	}
	return tx.Commit()
}

// benchRounds runs b.N transactions of each kind from writers goroutines,
// the kinds taking turns in rounds (so that load from elsewhere on a
// shared machine hits them alike), after a warm-up of every kind, and
// returns each kind's transactions per second.
func benchRounds(b *testing.B, writers int, kinds []func() error) []float64 {
	round := func(n int, one func() error) time.Duration {
		var left atomic.Int64
		left.Store(int64(n))
		return timeGoroutines(b, writers, func(int) error {
			for left.Add(-1) >= 0 {
				if err := one(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Warm up every path: connections, statement caches, introspection.
	for _, one := range kinds {
		round(2*writers, one)
	}
	b.ResetTimer()
	spent := make([]time.Duration, len(kinds))
	for _, n := range cqrsynctesting.SplitRounds(b.N, 4) {
		for k, one := range kinds {
			spent[k] += round(n, one)
		}
	}
	b.StopTimer()
	rates := make([]float64, len(kinds))
	for k, d := range spent {
		rates[k] = float64(b.N) / d.Seconds()
	}
	return rates
}

// timeGoroutines runs fn(0) … fn(n-1) in n goroutines and returns the wall
// time until all returned; the first error fails the benchmark.
func timeGoroutines(b *testing.B, n int, fn func(g int) error) time.Duration {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(g); err != nil {
				errs <- err
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

// BenchmarkMasterCaptureWAL is BenchmarkMasterCapture on PostgreSQL for
// the write-ahead log outbox (MasterConfig.Outbox = OutboxWAL, issue 18):
// the plain INSERT+COMMIT, Master.Insert+COMMIT with the table outbox, and
// Master.Insert+COMMIT and INSERT+Master.Create+COMMIT with the WAL
// outbox, in alternating rounds. No slot streams the messages here: this
// is the master's own cost (a relay's decoding is measured by cqrsync
// bench --outbox wal). Metrics:
//
//	plain_tx/s        INSERT+COMMIT transactions per second
//	insert/plain      Master.Insert, table outbox, over the plain rate
//	wal_insert/plain  Master.Insert, WAL outbox (issue 18's goal: ≥ 0.85)
//	wal_create/plain  INSERT+Master.Create, WAL outbox
//	ns/op             wall time per WAL Master.Insert transaction
func BenchmarkMasterCaptureWAL(b *testing.B) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("postgres/writers=%d", writers), func(b *testing.B) { benchMasterCaptureWAL(b, benchBackends[1], writers) })
	}
}

func benchMasterCaptureWAL(b *testing.B, be benchBackend, writers int) {
	tables := []string{"plain_item", "inserted_item", "wal_item", "walcreate_item"}
	db := be.open(b, be.ddl(tables[0]), be.ddl(tables[1]), be.ddl(tables[2]), be.ddl(tables[3]))
	db.SetMaxOpenConns(writers + 2)
	db.SetMaxIdleConns(writers + 2)
	table, err := cqrsync.NewMaster(databasesql.New(db, be.dialect), nil)
	if err != nil {
		b.Fatal(err)
	}
	wal, err := cqrsync.NewMaster(databasesql.New(db, be.dialect), &cqrsync.MasterConfig{Outbox: cqrsync.OutboxWAL})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct {
		m     *cqrsync.Master[*sql.Tx]
		table string
	}{{table, tables[1]}, {wal, tables[2]}, {wal, tables[3]}} {
		if err := r.m.Register(&cqrsync.MasterModel{CQRSID: r.table, Table: r.table}); err != nil {
			b.Fatal(err)
		}
	}
	payload := strings.Repeat("p", 256)
	ctx := b.Context()
	var nextID atomic.Int64
	inTx := func(fn func(tx *sql.Tx, id int64) error) func() error {
		return func() error { return benchTx(ctx, db, nextID.Add(1), fn) }
	}
	insertWith := func(m *cqrsync.Master[*sql.Tx], table string) func() error {
		return inTx(func(tx *sql.Tx, id int64) error {
			return m.Insert(ctx, tx, table, map[string]any{"id": id, "commit_us": time.Now().UnixMicro(), "payload": payload})
		})
	}
	insertSQL := func(table string) string {
		return "INSERT INTO " + table + " (id, commit_us, payload) VALUES ($1, $2, $3)"
	}
	rates := benchRounds(b, writers, []func() error{
		inTx(func(tx *sql.Tx, id int64) error {
			_, err := tx.ExecContext(ctx, insertSQL(tables[0]), id, time.Now().UnixMicro(), payload)
			return err
		}),
		insertWith(table, tables[1]),
		insertWith(wal, tables[2]),
		inTx(func(tx *sql.Tx, id int64) error {
			if _, err := tx.ExecContext(ctx, insertSQL(tables[3]), id, time.Now().UnixMicro(), payload); err != nil {
				return err
			}
			return wal.Create(ctx, tx, tables[3], id)
		}),
	})
	b.ReportMetric(1e9/rates[2], "ns/op")
	b.ReportMetric(rates[0], "plain_tx/s")
	b.ReportMetric(rates[1]/rates[0], "insert/plain")
	b.ReportMetric(rates[2]/rates[0], "wal_insert/plain")
	b.ReportMetric(rates[3]/rates[0], "wal_create/plain")
}

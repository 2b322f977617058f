package cli_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// BenchmarkBulkPostgres measures bulk-dump and bulk-load of narrow rows on
// PostgreSQL, through the commands (the goal: 50,000 rows/s for the
// load). It is not part of the normal test run:
//
//	CI=true go test -run '^$' -bench BulkPostgres -benchtime 1x ./cli/
//
// CQRSYNC_BENCH_ROWS sets the number of rows (default 1,000,000).
func BenchmarkBulkPostgres(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("CQRSYNC_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	const table = `(id BIGINT PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ NOT NULL)`
	masterDB := cqrsynctesting.OpenPostgres(b, "CREATE TABLE item "+table,
		fmt.Sprintf(`INSERT INTO item SELECT i, 'item ' || i, i %% 1000, i %% 3, TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 ms'
			FROM generate_series(1, %d) i`, n), "ANALYZE item")
	replicaDB := cqrsynctesting.OpenPostgres(b, "CREATE TABLE item_copy "+table)
	master := &cli.Options{Setup: func(_ context.Context, req *cli.SetupRequest) (*cli.App, error) {
		m, err := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.Postgres()), &cqrsync.MasterConfig{Logger: req.Logger})
		if err != nil {
			return nil, err
		}
		return &cli.App{DB: masterDB, Dialect: sqldialect.Postgres(), Master: m}, m.Register(&cqrsync.MasterModel{CQRSID: "item", Table: "item"})
	}}
	replica := &cli.Options{Setup: func(_ context.Context, req *cli.SetupRequest) (*cli.App, error) {
		r, err := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.Postgres()), &cqrsync.ReplicaConfig{Logger: req.Logger})
		if err != nil {
			return nil, err
		}
		return &cli.App{DB: replicaDB, Dialect: sqldialect.Postgres(), Replica: r}, r.Register(&cqrsync.ReplicaModel{CQRSID: "item", Table: "item_copy"})
	}}
	dump := filepath.Join(b.TempDir(), "item.dump")
	run := func(opts *cli.Options, args ...string) time.Duration {
		b.Helper()
		start := time.Now()
		r := runCtx(b.Context(), opts, "", args...)
		if r.code != cli.ExitOK {
			b.Fatalf("%v: exit %d\n%s", args, r.code, r.errOut)
		}
		return time.Since(start)
	}
	b.Run("dump", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			elapsed += run(master, "bulk-dump", "-c", "item", "-o", dump, "--force")
		}
		b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "rows/s")
	})
	b.Run("load", func(b *testing.B) {
		if _, err := os.Stat(dump); err != nil {
			run(master, "bulk-dump", "-c", "item", "-o", dump) // -bench BulkPostgres/load alone
		}
		var elapsed time.Duration
		for b.Loop() {
			b.StopTimer()
			if _, err := replicaDB.ExecContext(b.Context(), "TRUNCATE item_copy"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			elapsed += run(replica, "bulk-load", "-i", dump)
		}
		b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "rows/s")
		if got := countRows(b, replicaDB, "item_copy"); got != n {
			b.Fatalf("%d rows loaded, want %d", got, n)
		}
	})
}

func countRows(b *testing.B, db *sql.DB, table string) int {
	var n int
	if err := db.QueryRowContext(b.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

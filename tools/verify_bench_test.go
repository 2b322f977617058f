package tools_test

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
)

// BenchmarkVerify measures the drift check on a PostgreSQL master and a
// PostgreSQL replica of CQRSYNC_VERIFY_ROWS rows (default 100,000) with 10
// rows edited on the replica, against its baseline in the same run: a naive
// compare that ships the master's whole table (its bulk dump) to the
// replica side and compares it row by row. Run with -benchtime=1x.
func BenchmarkVerify(b *testing.B) {
	rows := 100000
	if s := os.Getenv("CQRSYNC_VERIFY_ROWS"); s != "" {
		var err error
		if rows, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	const ddl = `CREATE TABLE bench_item (
		id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ NOT NULL,
		name VARCHAR(200) NOT NULL, qty INTEGER NOT NULL, price NUMERIC(12,2), note TEXT)`
	const fill = `INSERT INTO bench_item SELECT g, 1, '2026-01-01 00:00:00+00', 'item ' || g, g % 97, (g * 1.25)::numeric(12,2), repeat('n', g % 40)
		FROM generate_series(1, $1) AS g`
	start := time.Now()
	masterDB := cqrsynctesting.OpenPostgres(b, ddl)
	replicaDB := cqrsynctesting.OpenPostgres(b, ddl)
	for _, db := range []*sql.DB{masterDB, replicaDB} {
		if _, err := db.ExecContext(b.Context(), fill, rows); err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(b.Context(), `ANALYZE bench_item`); err != nil {
			b.Fatal(err)
		}
	}
	// 10 drifted rows, spread over the table, revision untouched.
	if _, err := replicaDB.ExecContext(b.Context(), `UPDATE bench_item SET name = 'drifted' WHERE id % $1 = 7`, rows/10); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d rows on each side, filled in %s", rows, time.Since(start).Round(time.Millisecond))
	master, err := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.Postgres()), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "bench_item", Table: "bench_item"}); err != nil {
		b.Fatal(err)
	}
	replica, err := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.Postgres()), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "bench_item", Table: "bench_item"}); err != nil {
		b.Fatal(err)
	}
	local := tools.NewLocalMaster(master, sqldialect.FromSQL(masterDB))
	side := tools.NewLocalReplica(replica, sqldialect.FromSQL(replicaDB))

	b.Run("range-hash", func(b *testing.B) {
		srv := httptest.NewServer(tools.VerifyHandler(local))
		defer srv.Close()
		defer srv.Client().CloseIdleConnections()
		for b.Loop() {
			client := tools.NewVerifyClient(srv.URL, srv.Client())
			rep, err := tools.Verify(b.Context(), client, side, "bench_item", nil)
			if err != nil {
				b.Fatal(err)
			}
			if len(rep.Differ) != 10 || len(rep.Missing)+len(rep.Extra) != 0 {
				b.Fatalf("found %d differing rows (%v), want 10", len(rep.Differ), rep.Differ)
			}
			sent, received := client.BytesExchanged()
			b.ReportMetric(float64(rep.MasterRows), "master-rows/op")
			b.ReportMetric(float64(rep.ReplicaRows), "replica-rows/op")
			b.ReportMetric(float64(sent+received), "bytes-exchanged/op")
			b.ReportMetric(float64(rep.Requests), "requests/op")
		}
	})

	b.Run("naive", func(b *testing.B) {
		for b.Loop() {
			differ, exchanged, err := naiveCompare(b, master, masterDB, replica, replicaDB)
			if err != nil {
				b.Fatal(err)
			}
			if differ != 10 {
				b.Fatalf("naive compare found %d differing rows, want 10", differ)
			}
			b.ReportMetric(float64(rows), "master-rows/op")
			b.ReportMetric(float64(rows), "replica-rows/op")
			b.ReportMetric(float64(exchanged), "bytes-exchanged/op")
		}
	})
}

// naiveCompare ships the master's whole table (its bulk dump, what a SYNC
// carries) and compares it row by row with the replica's rows, read in the
// same key order: the cost the range-hash walk avoids.
func naiveCompare(b *testing.B, master *cqrsync.Master[*sql.Tx], masterDB *sql.DB, replica *cqrsync.Replica, replicaDB *sql.DB) (differ int, exchanged int64, err error) {
	var dump bytes.Buffer
	if _, _, err := tools.Dump(b.Context(), master, sqldialect.FromSQL(masterDB), "bench_item", &dump, nil); err != nil {
		return 0, 0, err
	}
	exchanged = int64(dump.Len())
	sc := bufio.NewScanner(&dump)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	sc.Scan() // the CQRS ID
	var masterLine, replicaValue, masterValue []byte
	err = replica.ScanRows(b.Context(), sqldialect.FromSQL(replicaDB), "bench_item", nil, func(page []cqrsync.Object) error {
		for _, row := range page {
			if !sc.Scan() {
				return io.ErrUnexpectedEOF
			}
			masterLine = sc.Bytes()
			v, err := cqrsync.DecodeJSON(masterLine)
			if err != nil {
				return err
			}
			m := v.(cqrsync.Object)
			for _, f := range row {
				if f.Key == cqrsync.UpdatedField {
					continue
				}
				mv, _ := m.Get(f.Key)
				masterValue, _ = cqrsync.AppendJSON(masterValue[:0], mv)
				replicaValue, _ = cqrsync.AppendJSON(replicaValue[:0], f.Value)
				if !bytes.Equal(masterValue, replicaValue) {
					differ++
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("naive compare: %w", err)
	}
	return differ, exchanged, nil
}

package outbox_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// BenchmarkRelayDrain measures how fast a relay empties a full outbox when
// the broker costs nothing (the in-memory transport): the relay's own
// database work — claim a batch, publish, delete it — per dialect and batch
// size, next to the least SQL that reads and removes the same rows in the
// same batches (PostgreSQL and SQLite: one DELETE … RETURNING per batch;
// MariaDB: one SELECT and one DELETE by key), on the same database in the
// same run. The two alternate over four rounds of b.N/4 rows each. Metrics:
//
//	relay_rows/s    the relay, RunOnce until empty
//	raw_rows/s      the raw read-and-delete loop
//	relay/raw       their ratio
//	ns/op           wall time per row, relay
//
// Run with a fixed count, e.g. -benchtime=20000x.
func BenchmarkRelayDrain(b *testing.B) {
	for _, be := range []struct {
		name    string
		dialect sqldialect.Dialect
		open    func(b *testing.B) *sql.DB
	}{
		{"sqlite", sqldialect.SQLite(), func(b *testing.B) *sql.DB { return cqrsynctesting.OpenSQLite(b) }},
		{"postgres", sqldialect.Postgres(), func(b *testing.B) *sql.DB { return cqrsynctesting.OpenPostgres(b) }},
		{"mysql", sqldialect.MySQL(), func(b *testing.B) *sql.DB { return cqrsynctesting.OpenMySQL(b) }},
	} {
		for _, batch := range []int{100, 500} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, batch), func(b *testing.B) {
				benchRelayDrain(b, be.open(b), be.dialect, batch)
			})
		}
	}
}

func benchRelayDrain(b *testing.B, db *sql.DB, d sqldialect.Dialect, batch int) {
	ctx := b.Context()
	ex := sqldialect.FromSQL(db)
	body := []byte(`{"signal_type":"SAVE","cqrs_id":"item","instance_data":{"payload":"` + strings.Repeat("x", 450) + `"}}`)
	fill := func(n int) {
		rows := make([]sqldialect.OutboxRow, n)
		now := time.Now()
		for i := range rows {
			rows[i] = sqldialect.OutboxRow{CQRSID: "item", Body: body, CreatedAt: now}
		}
		if err := d.InsertOutbox(ctx, ex, rows); err != nil {
			b.Fatal(err)
		}
	}
	// No queue is bound: the broker accepts and drops every message, so
	// only the relay's own work is measured.
	broker := memory.NewBroker(nil)
	pub := broker.Publisher()
	b.Cleanup(func() { _ = pub.Close() })
	relay, err := outbox.NewRelay(databasesql.New(db, d), &outbox.Config{Publisher: pub, BatchSize: batch})
	if err != nil {
		b.Fatal(err)
	}
	relayRound := func() time.Duration {
		start := time.Now()
		for {
			n, err := relay.RunOnce(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				return time.Since(start)
			}
		}
	}
	var rawSQL []string
	switch d.Name() {
	case "mysql":
		rawSQL = []string{fmt.Sprintf("SELECT id, body FROM cqrs_outbox ORDER BY id LIMIT %d", batch), "DELETE FROM cqrs_outbox WHERE id IN (%s)"}
	default:
		rawSQL = []string{fmt.Sprintf("DELETE FROM cqrs_outbox WHERE id IN (SELECT id FROM cqrs_outbox ORDER BY id LIMIT %d) RETURNING id, body", batch)}
	}
	rawRound := func() time.Duration {
		start := time.Now()
		for {
			rows, err := db.QueryContext(ctx, rawSQL[0])
			if err != nil {
				b.Fatal(err)
			}
			var ids []string
			for rows.Next() {
				var id int64
				var body []byte
				if err := rows.Scan(&id, &body); err != nil {
					b.Fatal(err)
				}
				ids = append(ids, fmt.Sprint(id))
			}
			if err := rows.Close(); err != nil {
				b.Fatal(err)
			}
			if len(ids) == 0 {
				return time.Since(start)
			}
			if len(rawSQL) > 1 {
				if _, err := db.ExecContext(ctx, fmt.Sprintf(rawSQL[1], strings.Join(ids, ","))); err != nil {
					b.Fatal(err)
				}
			}
		}
	}

	b.ResetTimer()
	var relayTime, rawTime time.Duration
	for _, n := range cqrsynctesting.SplitRounds(b.N, 4) {
		b.StopTimer()
		fill(n)
		b.StartTimer()
		relayTime += relayRound()
		b.StopTimer()
		fill(n)
		b.StartTimer()
		rawTime += rawRound()
	}
	b.StopTimer()
	if published := relay.Published(); published != int64(b.N) {
		b.Fatalf("the relay published %d events, want %d", published, b.N)
	}
	b.ReportMetric(float64(relayTime.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(b.N)/relayTime.Seconds(), "relay_rows/s")
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw_rows/s")
	b.ReportMetric(rawTime.Seconds()/relayTime.Seconds(), "relay/raw")
}

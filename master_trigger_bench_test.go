package cqrsync_test

import (
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/capture/trigger"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// BenchmarkTriggerCapture measures what capture triggers (package
// capture/trigger) cost a writer, next to library capture and to a plain
// write, on the same database in the same run, one row per transaction:
//
//	plain    UPDATE + COMMIT on a table without capture
//	library  Master.UpdateRow + COMMIT (the change and its capture in one
//	         statement, then the outbox insert)
//	trigger  the same plain UPDATE + COMMIT on a table with capture
//	         triggers (revision, cqrs_updated and the outbox row image
//	         written by the database)
//
// and the same three for inserts (plain INSERT, Master.Insert, plain
// INSERT on the trigger table), then Master.UpdateRow on the trigger table
// (library capture marking its statements so that the triggers leave them
// alone), in alternating rounds over 10,000 rows per table. The relay's
// rendering of the triggers' rows is not part of it (it runs in the relay,
// off the writer's path). Metrics: the plain rates (update_tx/s,
// insert_tx/s) and each capture's ratio to its plain rate (the marked
// library update's is lib_on_trigger/plain); ns/op is the wall time of a
// trigger-captured update.
//
// Run with a fixed count: -benchtime=2000x, several -count.
func BenchmarkTriggerCapture(b *testing.B) {
	for _, be := range benchBackends {
		if be.name == "sqlite" {
			continue // no capture triggers on SQLite
		}
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/writers=%d", be.name, writers), func(b *testing.B) { benchTriggerCapture(b, be, writers) })
		}
	}
}

func benchTriggerCapture(b *testing.B, be benchBackend, writers int) {
	const rows = 10000
	tables := []string{"plain_item", "library_item", "trigger_item"}
	db := be.open(b, be.ddl(tables[0]), be.ddl(tables[1]), be.ddl(tables[2]))
	db.SetMaxOpenConns(writers + 2)
	db.SetMaxIdleConns(writers + 2)
	drv := databasesql.New(db, be.dialect)
	master, err := cqrsync.NewMaster(drv, nil)
	if err != nil {
		b.Fatal(err)
	}
	library, trig := &cqrsync.MasterModel{CQRSID: "library", Table: tables[1]}, &cqrsync.MasterModel{CQRSID: "trigger", Table: tables[2]}
	for _, m := range []*cqrsync.MasterModel{library, trig} {
		if err := master.Register(m); err != nil {
			b.Fatal(err)
		}
	}
	ctx := b.Context()
	if err := trigger.Install(ctx, drv, trig); err != nil {
		b.Fatal(err)
	}
	ph := be.dialect.Placeholder
	payload := strings.Repeat("p", 256)
	seedBenchRows(b, db, tables, rows, payload)
	update := benchUpdateSQL(ph)
	insert := func(table string) string {
		return fmt.Sprintf("INSERT INTO %s (id, commit_us, payload) VALUES (%s, %s, %s)", table, ph(1), ph(2), ph(3))
	}
	var next, nextNew atomic.Int64
	nextNew.Store(rows)
	updating := func(fn func(tx *sql.Tx, id int64) error) func() error {
		return func() error { return benchTx(ctx, db, next.Add(1)%rows+1, fn) }
	}
	inserting := func(fn func(tx *sql.Tx, id int64) error) func() error {
		return func() error { return benchTx(ctx, db, nextNew.Add(1), fn) }
	}
	exec := func(q string) func(tx *sql.Tx, id int64) error {
		return func(tx *sql.Tx, id int64) error {
			_, err := tx.ExecContext(ctx, q, time.Now().UnixMicro(), payload, id)
			return err
		}
	}
	execInsert := func(q string) func(tx *sql.Tx, id int64) error {
		return func(tx *sql.Tx, id int64) error {
			_, err := tx.ExecContext(ctx, q, id, time.Now().UnixMicro(), payload)
			return err
		}
	}
	rates := benchRounds(b, writers, []func() error{
		updating(exec(update(tables[0]))),
		updating(func(tx *sql.Tx, id int64) error {
			return master.UpdateRow(ctx, tx, "library", id, map[string]any{"commit_us": time.Now().UnixMicro(), "payload": payload})
		}),
		updating(exec(update(tables[2]))),
		inserting(execInsert(insert(tables[0]))),
		inserting(func(tx *sql.Tx, id int64) error {
			return master.Insert(ctx, tx, "library", map[string]any{"id": id, "commit_us": time.Now().UnixMicro(), "payload": payload})
		}),
		inserting(execInsert(insert(tables[2]))),
		updating(func(tx *sql.Tx, id int64) error {
			return master.UpdateRow(ctx, tx, "trigger", id, map[string]any{"commit_us": time.Now().UnixMicro(), "payload": payload})
		}),
	})
	b.ReportMetric(1e9/rates[2], "ns/op")
	b.ReportMetric(rates[0], "update_tx/s")
	b.ReportMetric(rates[1]/rates[0], "library/plain")
	b.ReportMetric(rates[2]/rates[0], "trigger/plain")
	b.ReportMetric(rates[3], "insert_tx/s")
	b.ReportMetric(rates[4]/rates[3], "ins_library/plain")
	b.ReportMetric(rates[5]/rates[3], "ins_trigger/plain")
	b.ReportMetric(rates[6]/rates[0], "lib_on_trigger/plain")
}

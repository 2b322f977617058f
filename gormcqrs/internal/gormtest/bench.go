package gormtest

import (
	"cmp"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/gormcqrs"
)

// benchPlain and benchCaptured are the benchmark's rows: the same columns
// in two tables, one written by plain GORM, one by GORM with the plugin.
type benchPlain struct {
	ID       int64 `gorm:"primaryKey;autoIncrement:false"`
	CommitUS int64
	Payload  string `gorm:"size:300"`
	gormcqrs.Revision
}

func (benchPlain) TableName() string { return "bench_gorm" }

type benchCaptured benchPlain

func (benchCaptured) TableName() string { return "bench_plugin" }

// sqlTable is written by plain database/sql.
const sqlTable = "bench_sql"

// BenchCapture measures the cost of the plugin: one row per transaction,
// written by database/sql (INSERT or UPDATE + COMMIT), by plain GORM
// (Create, or Updates by key, in GORM's own transaction) and by GORM with
// the plugin capturing it, in alternating rounds on the same database in
// the same run, with 1 and 8 writers. update picks updates of 10,000
// existing rows instead of creates. Metrics: the three rates (sql_tx/s,
// gorm_tx/s, plugin_tx/s) and the ratios plugin/gorm, plugin/sql and
// gorm/sql; ns/op is the wall time of a captured transaction.
func BenchCapture(b *testing.B, open Opener, update bool) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchCapture(b, open, update, writers) })
	}
}

func benchCapture(b *testing.B, open Opener, update bool, writers int) {
	ctx := b.Context()
	gdb := open(b, &gorm.Config{Logger: logger.Discard})
	drv, err := gormcqrs.Driver(gdb)
	if err != nil {
		b.Fatal(err)
	}
	sqlDB := drv.DB()
	sqlDB.SetMaxOpenConns(writers + 2)
	sqlDB.SetMaxIdleConns(writers + 2)
	if err := gdb.AutoMigrate(&benchPlain{}, &benchCaptured{}); err != nil {
		b.Fatal(err)
	}
	if err := gdb.Table(sqlTable).AutoMigrate(&benchPlain{}); err != nil {
		b.Fatal(err)
	}
	// Plain GORM runs on its own *gorm.DB, without the plugin's callbacks.
	plain, err := gorm.Open(gdb.Dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		b.Fatal(err)
	}
	if own, err := plain.DB(); err == nil && own != sqlDB {
		// A dialector opened from a DSN opens a pool of its own.
		own.SetMaxOpenConns(writers + 2)
		own.SetMaxIdleConns(writers + 2)
		b.Cleanup(func() { _ = own.Close() })
	}
	master, err := cqrsync.NewMaster(drv, &cqrsync.MasterConfig{AutoUpdateFields: true})
	if err != nil {
		b.Fatal(err)
	}
	captured := gdb.Session(&gorm.Session{})
	plugin := gormcqrs.New(master)
	if err := captured.Use(plugin); err != nil {
		b.Fatal(err)
	}
	if err := plugin.Register(&benchCaptured{}, &cqrsync.MasterModel{CQRSID: "bench"}); err != nil {
		b.Fatal(err)
	}
	ph := placeholders(gdb)
	payload := strings.Repeat("p", 256)
	const rows = 10000
	if update {
		seed := make([]benchPlain, rows)
		for i := range seed {
			seed[i] = benchPlain{ID: int64(i + 1), Payload: payload}
		}
		for _, table := range []string{sqlTable, "bench_gorm", "bench_plugin"} {
			if err := plain.Table(table).CreateInBatches(seed, 1000).Error; err != nil {
				b.Fatal(err)
			}
		}
	}
	var next atomic.Int64
	key := func() int64 {
		if update {
			return next.Add(1)%rows + 1
		}
		return next.Add(1)
	}
	sqlWrite := "INSERT INTO " + sqlTable + " (id, commit_us, payload, cqrs_revision) VALUES " + ph(4)
	if update {
		p := ph(3)
		parts := strings.Split(p[1:len(p)-1], ", ")
		sqlWrite = fmt.Sprintf("UPDATE %s SET commit_us = %s, payload = %s WHERE id = %s", sqlTable, parts[0], parts[1], parts[2])
	}
	kinds := []func() error{
		func() error { // database/sql
			tx, err := sqlDB.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			id := key()
			if update {
				_, err = tx.ExecContext(ctx, sqlWrite, time.Now().UnixMicro(), payload, id)
			} else {
				_, err = tx.ExecContext(ctx, sqlWrite, id, time.Now().UnixMicro(), payload, 0)
			}
			if err != nil {
				_ = tx.Rollback()
				return err
			}
			return tx.Commit()
		},
		func() error { // plain GORM
			id := key()
			if update {
				return plain.WithContext(ctx).Model(&benchPlain{ID: id}).Updates(map[string]any{"commit_us": time.Now().UnixMicro(), "payload": payload}).Error
			}
			return plain.WithContext(ctx).Create(&benchPlain{ID: id, CommitUS: time.Now().UnixMicro(), Payload: payload}).Error
		},
		func() error { // GORM with the plugin
			id := key()
			if update {
				return captured.WithContext(ctx).Model(&benchCaptured{ID: id}).Updates(map[string]any{"commit_us": time.Now().UnixMicro(), "payload": payload}).Error
			}
			return captured.WithContext(ctx).Create(&benchCaptured{ID: id, CommitUS: time.Now().UnixMicro(), Payload: payload}).Error
		},
	}
	rates := rounds(b, writers, kinds)
	b.ReportMetric(1e9/rates[2], "ns/op")
	b.ReportMetric(rates[0], "sql_tx/s")
	b.ReportMetric(rates[1], "gorm_tx/s")
	b.ReportMetric(rates[2], "plugin_tx/s")
	b.ReportMetric(rates[2]/rates[1], "plugin/gorm")
	b.ReportMetric(rates[2]/rates[0], "plugin/sql")
	b.ReportMetric(rates[1]/rates[0], "gorm/sql")
}

// rounds runs b.N calls of each kind, by writers goroutines, in
// alternating rounds (so that load from elsewhere hits the kinds alike),
// and returns each kind's rate in calls per second.
func rounds(b *testing.B, writers int, kinds []func() error) []float64 {
	const k = 10
	elapsed := make([]time.Duration, len(kinds))
	b.ResetTimer()
	for r := range k {
		n := b.N / k
		if r < b.N%k {
			n++
		}
		for i, fn := range kinds {
			var left atomic.Int64
			left.Store(int64(n))
			start := time.Now()
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				failed error
			)
			for range writers {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						if err := fn(); err != nil {
							mu.Lock()
							failed = cmp.Or(failed, err)
							mu.Unlock()
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed[i] += time.Since(start)
			if failed != nil {
				b.Fatal(failed)
			}
		}
	}
	b.StopTimer()
	out := make([]float64, len(kinds))
	for i, d := range elapsed {
		out[i] = float64(b.N) / d.Seconds()
	}
	return out
}

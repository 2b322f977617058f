// Package servertest runs the GORM plugin's suite on PostgreSQL and
// MariaDB (see package gormtest for why it is not in gormcqrs's tests).
package servertest

import (
	"testing"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/cqrsync/cqrsync/gormcqrs/internal/gormtest"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
)

// openPostgres and openMySQL open a migrated database of the test's own
// through GORM.
func openPostgres(t testing.TB, cfg *gorm.Config) *gorm.DB {
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: cqrsynctesting.OpenPostgres(t)}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openMySQL(t testing.TB, cfg *gorm.Config) *gorm.DB {
	db, err := gorm.Open(mysql.New(mysql.Config{Conn: cqrsynctesting.OpenMySQL(t)}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

var databases = []struct {
	name string
	open gormtest.Opener
}{{"Postgres", openPostgres}, {"MySQL", openMySQL}}

// onEach runs suite on each database, in parallel.
func onEach(t *testing.T, suite func(*testing.T, gormtest.Opener)) {
	t.Parallel()
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			suite(t, d.open)
		})
	}
}

func TestEvents(t *testing.T)   { onEach(t, gormtest.RunEvents) }
func TestRollback(t *testing.T) { onEach(t, gormtest.RunRollback) }
func TestReplica(t *testing.T)  { onEach(t, gormtest.RunReplica) }

func TestAssociations(t *testing.T) { onEach(t, gormtest.RunAssociations) }

func TestPreparedStatements(t *testing.T) { onEach(t, gormtest.RunPreparedStatements) }

// BenchmarkGORMCaptureCreate and BenchmarkGORMCaptureUpdate compare GORM
// with the plugin to plain GORM and to database/sql (see
// gormtest.BenchCapture), on each database.
func BenchmarkGORMCaptureCreate(b *testing.B) {
	for _, d := range databases {
		b.Run(d.name, func(b *testing.B) { gormtest.BenchCapture(b, d.open, false) })
	}
}

func BenchmarkGORMCaptureUpdate(b *testing.B) {
	for _, d := range databases {
		b.Run(d.name, func(b *testing.B) { gormtest.BenchCapture(b, d.open, true) })
	}
}

func TestConcurrentMatchPostgres(t *testing.T) {
	t.Parallel()
	gormtest.RunConcurrentMatchPostgres(t, openPostgres)
}

func TestConcurrentUpsert(t *testing.T) { onEach(t, gormtest.RunConcurrentUpsert) }

func TestUpdateByKey(t *testing.T) { onEach(t, gormtest.RunUpdateByKey) }

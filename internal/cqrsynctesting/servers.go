package cqrsynctesting

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxexec"
)

// UniqueName returns prefix followed by random hex, for schemas, databases
// and queues that tests create on shared servers.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// PostgresDSN creates a schema of its own on the test PostgreSQL server
// (CQRSYNC_POSTGRES_URL) and returns a URL whose sessions use only that
// schema; the schema is dropped when the test ends. Locally it skips the
// test if the server is down; under CI it fails.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	base := testenv.PostgresURL(tb)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	schema := UniqueName("cqrsynctest_")
	if _, err := admin.ExecContext(tb.Context(), "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
			_ = db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// OpenPostgres opens a migrated, empty schema of its own (see PostgresDSN)
// through database/sql and the pgx driver, closed when the test ends.
func OpenPostgres(tb testing.TB, ddl ...string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", PostgresDSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := sqldialect.Postgres().Migrate(tb.Context(), sqldialect.FromSQL(db)); err != nil {
		tb.Fatal(err)
	}
	for _, stmt := range ddl {
		if _, err := db.ExecContext(tb.Context(), stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}
	return db
}

// MySQLDSN creates a database of its own on the test MariaDB/MySQL server
// (CQRSYNC_MYSQL_URL) and returns a go-sql-driver DSN for it; the database
// is dropped when the test ends. Locally it skips the test if the server is
// down; under CI it fails.
func MySQLDSN(tb testing.TB) string {
	tb.Helper()
	cfg, err := mysql.ParseDSN(testenv.MySQLURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ParseTime = true
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	name := UniqueName("cqrsynctest_")
	if _, err := admin.ExecContext(tb.Context(), "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err == nil {
			_, _ = db.Exec("DROP DATABASE " + name)
			_ = db.Close()
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// OpenMySQL opens a migrated, empty database of its own (see MySQLDSN),
// closed when the test ends.
func OpenMySQL(tb testing.TB, ddl ...string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("mysql", MySQLDSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := sqldialect.MySQL().Migrate(tb.Context(), sqldialect.FromSQL(db)); err != nil {
		tb.Fatal(err)
	}
	for _, stmt := range ddl {
		if _, err := db.ExecContext(tb.Context(), stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}
	return db
}

// OpenPgxPool opens a pgx pool on a migrated, empty schema of its own (see
// PostgresDSN), closed when the test ends, and runs ddl on it.
func OpenPgxPool(tb testing.TB, ddl ...string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(tb.Context(), PostgresDSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := sqldialect.Postgres().Migrate(tb.Context(), pgxexec.New(pool)); err != nil {
		tb.Fatal(err)
	}
	for _, stmt := range ddl {
		if _, err := pool.Exec(tb.Context(), stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}
	return pool
}

package bench

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/sqldialect/pgxv5"
)

// Default service URLs, the same as the tests' (internal/testenv), which
// the CQRSYNC_*_URL environment variables override.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQLURL    = "root@tcp(127.0.0.1:3306)/test?parseTime=true"
	DefaultAMQPURL     = "amqp://guest:guest@127.0.0.1:5672/"
)

// Kinds of database.
const (
	Postgres = "postgres"
	MySQL    = "mysql"
	SQLite   = "sqlite"
)

// target is a database server (or SQLite file) named by the user.
type target struct {
	kind string
	// dsn is the server's URL (PostgreSQL), a go-sql-driver DSN (MySQL), or
	// the SQLite file ("" for a temporary one).
	dsn string
}

// parseTarget reads a --master-db or --replica-db value: a URL
// (postgres://, postgresql://, mysql://user:pass@host:port/db, sqlite:path),
// a go-sql-driver/mysql DSN (user@tcp(host:port)/db), or a bare kind
// ("postgres", "mysql", "mariadb", "sqlite") that takes its URL from
// CQRSYNC_POSTGRES_URL or CQRSYNC_MYSQL_URL, or the local default.
func parseTarget(raw string) (*target, error) {
	raw = strings.TrimSpace(raw)
	switch strings.ToLower(raw) {
	case "postgres", "postgresql", "pg":
		return &target{kind: Postgres, dsn: cmp.Or(os.Getenv("CQRSYNC_POSTGRES_URL"), DefaultPostgresURL)}, nil
	case "mysql", "mariadb":
		return parseTarget(cmp.Or(os.Getenv("CQRSYNC_MYSQL_URL"), DefaultMySQLURL))
	case "sqlite", "sqlite:", "sqlite://":
		return &target{kind: SQLite}, nil
	}
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return &target{kind: Postgres, dsn: raw}, nil
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(raw, "sqlite:"), "//")
		return &target{kind: SQLite, dsn: path}, nil
	case strings.HasPrefix(raw, "mysql://"), strings.HasPrefix(raw, "mariadb://"):
		u, err := url.Parse(raw)
		if err != nil {
			return nil, errors.New("bench: the mysql:// URL does not parse: use mysql://user:password@host:port/db")
		}
		cfg := mysql.NewConfig()
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.Net = "tcp"
		cfg.Addr = u.Host
		if u.Port() == "" {
			cfg.Addr = u.Hostname() + ":3306"
		}
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		cfg.ParseTime = true
		return &target{kind: MySQL, dsn: cfg.FormatDSN()}, nil
	case strings.Contains(raw, "@tcp(") || strings.Contains(raw, "@unix("):
		cfg, err := mysql.ParseDSN(raw)
		if err != nil {
			return nil, fmt.Errorf("bench: MySQL DSN: %w", err)
		}
		cfg.ParseTime = true
		return &target{kind: MySQL, dsn: cfg.FormatDSN()}, nil
	}
	return nil, fmt.Errorf("bench: database %q: use postgres://…, mysql://user@host:port/db, sqlite:path, or one of postgres, mysql, sqlite", raw)
}

// String shows the target without its password.
func (t *target) String() string {
	switch t.kind {
	case Postgres:
		if u, err := url.Parse(t.dsn); err == nil {
			return u.Redacted()
		}
	case MySQL:
		if cfg, err := mysql.ParseDSN(t.dsn); err == nil {
			return fmt.Sprintf("mysql://%s@%s/%s", cfg.User, cfg.Addr, cfg.DBName)
		}
	case SQLite:
		return "sqlite:" + cmp.Or(t.dsn, "(temporary file)")
	}
	return t.kind
}

// database is a fresh, empty schema (PostgreSQL), database (MySQL) or file
// (SQLite) created for one run, with cqrsync's tables migrated.
type database struct {
	kind       string
	name       string // schema, database or file
	driverName string
	dsn        string // connects to the fresh schema/database/file
	dialect    sqldialect.Dialect
	version    string
	drop       func(context.Context) error
}

// create makes a fresh schema/database/file named name on t.
func (t *target) create(ctx context.Context, name string) (*database, error) {
	switch t.kind {
	case Postgres:
		admin, err := sql.Open("pgx", t.dsn)
		if err != nil {
			return nil, err
		}
		defer admin.Close()
		var version string
		if err := admin.QueryRowContext(ctx, "SHOW server_version").Scan(&version); err != nil {
			return nil, fmt.Errorf("bench: connect to %s: %w", t, err)
		}
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
			return nil, fmt.Errorf("bench: create schema %s: %w", name, err)
		}
		u, err := url.Parse(t.dsn)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		base := t.dsn
		return &database{
			kind: Postgres, name: name, driverName: "pgx", dsn: u.String(), dialect: sqldialect.Postgres(),
			version: "PostgreSQL " + version,
			drop: func(ctx context.Context) error {
				db, err := sql.Open("pgx", base)
				if err != nil {
					return err
				}
				defer db.Close()
				_, err = db.ExecContext(ctx, "DROP SCHEMA "+name+" CASCADE")
				return err
			},
		}, nil
	case MySQL:
		cfg, err := mysql.ParseDSN(t.dsn)
		if err != nil {
			return nil, err
		}
		admin, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			return nil, err
		}
		defer admin.Close()
		var version string
		if err := admin.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			return nil, fmt.Errorf("bench: connect to %s: %w", t, err)
		}
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
			return nil, fmt.Errorf("bench: create database %s: %w", name, err)
		}
		base := cfg.FormatDSN()
		cfg.DBName = name
		cfg.ParseTime = true
		return &database{
			kind: MySQL, name: name, driverName: "mysql", dsn: cfg.FormatDSN(), dialect: sqldialect.MySQL(),
			version: "MySQL/MariaDB " + version,
			drop: func(ctx context.Context) error {
				db, err := sql.Open("mysql", base)
				if err != nil {
					return err
				}
				defer db.Close()
				_, err = db.ExecContext(ctx, "DROP DATABASE "+name)
				return err
			},
		}, nil
	case SQLite:
		path := t.dsn
		var dir string
		if path == "" {
			var err error
			if dir, err = os.MkdirTemp("", "cqrsync-bench-*"); err != nil {
				return nil, err
			}
			path = filepath.Join(dir, name+".db")
		} else if _, err := os.Stat(path); err == nil {
			return nil, fmt.Errorf("bench: sqlite:%s exists: name a new file (the bench creates it and removes it afterwards)", path)
		}
		d := &database{
			kind: SQLite, name: path, driverName: "sqlite", dialect: sqldialect.SQLite(),
			// WAL with synchronous=NORMAL is SQLite's usual server setting;
			// immediate transactions avoid deadlock-prone lock upgrades.
			dsn: "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate",
			drop: func(context.Context) error {
				if dir != "" {
					return os.RemoveAll(dir)
				}
				return errors.Join(os.Remove(path), rmIfExists(path+"-wal"), rmIfExists(path+"-shm"))
			},
		}
		db, err := sql.Open("sqlite", d.dsn)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&d.version); err != nil {
			_ = d.drop(ctx)
			return nil, err
		}
		d.version = "SQLite " + d.version
		return d, nil
	}
	return nil, fmt.Errorf("bench: unknown database kind %q", t.kind)
}

func rmIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// open connects to the fresh database. conns bounds the pool.
func (d *database) open(conns int) (*sql.DB, error) {
	db, err := sql.Open(d.driverName, d.dsn)
	if err != nil {
		return nil, err
	}
	d.pool(db, conns)
	return db, nil
}

// probed is a database opened through probe connections: a *sql.DB, and
// the driver the replica runs on (pgx-native on PostgreSQL, so that its
// transactions are pipelined).
type probed struct {
	db    *sql.DB
	drv   sqldialect.DB
	close func() error
}

// openProbed connects through probe connections (see probe.go).
func (d *database) openProbed(conns int, rec *recorder, st *stmtStats) (*probed, error) {
	if d.driverName == "pgx" {
		pool, db, err := openPgxProbed(d.dsn, conns, rec, st)
		if err != nil {
			return nil, err
		}
		return &probed{db: db, drv: pgxv5.New(pool), close: func() error {
			err := db.Close()
			pool.Close()
			return err
		}}, nil
	}
	db, err := openProbed(d.driverName, d.dsn, rec, st)
	if err != nil {
		return nil, err
	}
	d.pool(db, conns)
	return &probed{db: db, drv: databasesql.New(db, d.dialect), close: db.Close}, nil
}

func (d *database) pool(db *sql.DB, conns int) {
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
}

// tableDDL is the benchmark table, on the master and on the replica: the
// key, cqrsync's two columns, the commit timestamp the workload writes just
// before commit, the latency probe (see probe.go), and the payload of
// --row-bytes bytes.
func (d *database) tableDDL(table string) string {
	switch d.kind {
	case Postgres:
		return `CREATE TABLE ` + table + ` (
			id            BIGINT PRIMARY KEY,
			cqrs_revision INTEGER NOT NULL DEFAULT 0,
			cqrs_updated  TIMESTAMPTZ,
			commit_us     BIGINT NOT NULL,
			probe         BIGINT NOT NULL DEFAULT 0,
			payload       TEXT NOT NULL)`
	case MySQL:
		return `CREATE TABLE ` + table + ` (
			id            BIGINT PRIMARY KEY,
			cqrs_revision INTEGER NOT NULL DEFAULT 0,
			cqrs_updated  DATETIME(6) NULL,
			commit_us     BIGINT NOT NULL,
			probe         BIGINT NOT NULL DEFAULT 0,
			payload       TEXT NOT NULL) ENGINE=InnoDB`
	default:
		return `CREATE TABLE ` + table + ` (
			id            INTEGER PRIMARY KEY,
			cqrs_revision INTEGER NOT NULL DEFAULT 0,
			cqrs_updated  DATETIME,
			commit_us     INTEGER NOT NULL,
			probe         INTEGER NOT NULL DEFAULT 0,
			payload       TEXT NOT NULL)`
	}
}

// ph returns the n-th placeholder (1-based).
func (d *database) ph(n int) string { return d.dialect.Placeholder(n) }

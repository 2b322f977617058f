package config

import (
	"database/sql"
	"fmt"

	"github.com/cqrsync/cqrsync/internal/dburl"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// Errors of OpenDB, to tell them apart with errors.Is.
var (
	// ErrBadDatabaseURL: the URL cannot be used; its message says why.
	ErrBadDatabaseURL = dburl.ErrBadURL
	// ErrNoDriver: the URL's driver package (config/postgres, config/mysql
	// or config/sqlite) is not imported; its message names the import.
	ErrNoDriver = dburl.ErrNoDriver
	// ErrNoDatabaseFile: a SQLite file that does not exist, with a URL that
	// does not ask to create it (?mode=rwc).
	ErrNoDatabaseFile = dburl.ErrNoFile
)

// DB is a database opened from a URL.
type DB struct {
	// SQL is the handle. sql.Open does not connect: the first query does.
	SQL *sql.DB
	// Dialect is the database's SQL dialect, for cqrsync's configs.
	Dialect sqldialect.Dialect
	// Kind is "postgres", "mysql" or "sqlite".
	Kind string
	// Redacted is the URL with its password replaced by "xxxxx", for logs.
	Redacted string
	// Password is the URL's password, "" if none, to scrub from messages
	// that might quote it.
	Password string
	// ListenConnString is the URL the relay LISTENs on to wake up at once
	// (package outbox/pglisten); empty except for PostgreSQL.
	ListenConnString string

	newDriver func(db *sql.DB) sqldialect.Driver[*sql.Tx]
}

// Driver returns the database's driver (SQL with Dialect), for
// cqrsync.NewMaster, cqrsync.NewReplica, outbox.NewRelay and the Config's
// constructors: on PostgreSQL (config/postgres) the pgx driver that
// pipelines cqrsync's own transactions (pgxv5.NewStdlib), elsewhere
// package databasesql's.
func (d *DB) Driver() sqldialect.Driver[*sql.Tx] {
	if d.newDriver != nil {
		return d.newDriver(d.SQL)
	}
	return databasesql.New(d.SQL, d.Dialect)
}

// OpenDB opens the database of a URL: postgres://, mysql:// or sqlite:,
// each once its driver package is imported, e.g.
//
//	import _ "github.com/cqrsync/cqrsync/config/postgres"
//
// (see the package documentation for what each kind sets). Errors never
// show the password. Close DB.SQL when done.
func OpenDB(url string) (*DB, error) {
	db, u, err := dburl.Open(url)
	if err != nil {
		return nil, err
	}
	return &DB{SQL: db, Dialect: u.Dialect, Kind: u.Kind, Redacted: u.Redacted, Password: u.Password, ListenConnString: u.ListenConnString, newDriver: u.NewDriver}, nil
}

// OpenDB opens the database of database.url (or CQRSYNC_DATABASE_URL);
// errors name where the URL came from.
func (c *Config) OpenDB() (*DB, error) {
	if c.Database.URL == "" {
		return nil, fmt.Errorf("database.url: not set: set it in %s or %s", c.fileName(), EnvDatabaseURL)
	}
	db, err := OpenDB(c.Database.URL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.databaseFrom, err)
	}
	return db, nil
}

// Package dburl turns the database URLs of cqrsync's configuration into a
// database/sql driver name, a DSN and the matching SQL dialect.
//
// A kind of URL is understood once its driver package registered it, so
// that a program links only the database drivers it uses: config/postgres,
// config/mysql and config/sqlite, imported for their side effect. Three
// kinds exist:
//
//	postgres://user:password@host:5432/db?sslmode=disable   (also postgresql://)
//	mysql://user:password@host:3306/db?tls=true              (MariaDB or MySQL)
//	sqlite:///absolute/path/app.db   sqlite:relative/app.db
//
// PostgreSQL URLs go to the pgx driver ("pgx") unchanged, so every libpq
// parameter pgx knows works. MySQL URLs become a go-sql-driver/mysql DSN with
// parseTime=true and the session time zone set to UTC (time_zone='+00:00',
// unless the URL sets time_zone); other query parameters are passed to the
// driver as they are. SQLite URLs open modernc.org/sqlite with
// busy_timeout(10000), WAL journaling and _txlock=immediate, and mode=rw, so a
// mistyped path is an error rather than a new empty database; add
// ?mode=rwc to create the file.
//
// Errors and [DB.Redacted] never show the password.
package dburl

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// DB is a parsed database URL.
type DB struct {
	// Kind is "postgres", "mysql" or "sqlite".
	Kind string
	// Driver is the database/sql driver name: "pgx", "mysql" or "sqlite".
	Driver string
	// DSN is what to pass to sql.Open with Driver. It may hold the password:
	// never print it.
	DSN string
	// Dialect is the cqrsync dialect of the database.
	Dialect sqldialect.Dialect
	// Redacted is the URL with its password replaced by "xxxxx", for logs.
	Redacted string
	// Password is the URL's password, "" if none, so that callers can scrub
	// it from messages that might quote it.
	Password string
	// ListenConnString is the URL to LISTEN on for outbox notifications
	// (package outbox/pglisten); empty except for PostgreSQL.
	ListenConnString string
	// NewDriver is the kind's driver constructor (Kind.NewDriver), nil for
	// package databasesql's.
	NewDriver func(db *sql.DB) sqldialect.Driver[*sql.Tx]

	path      string // SQLite's file
	mustExist bool   // SQLite's file must exist (mode=rw)
}

// ErrBadURL is wrapped by every error of Parse.
var ErrBadURL = errors.New("bad database URL")

// ErrNoFile is wrapped by Open's error for a SQLite database file that does
// not exist (and that the URL does not ask to create with mode=rwc).
var ErrNoFile = errors.New("database file does not exist")

// ErrNoDriver is wrapped by Parse's error for a known scheme whose driver
// package the program does not import.
var ErrNoDriver = errors.New("database driver not imported")

// Kind is one kind of database URL, registered by its driver package.
type Kind struct {
	// Name is "postgres", "mysql" or "sqlite": the driver package's name
	// under config/.
	Name string
	// Schemes are the URL schemes it parses, lower case.
	Schemes []string
	// Parse parses a URL of one of Schemes. It does not connect.
	Parse func(raw string) (*DB, error)
	// NewDriver, when set, is the cqrsync driver for a database of this
	// kind opened with sql.Open (a pipelining one for pgx); nil means
	// package databasesql's.
	NewDriver func(db *sql.DB) sqldialect.Driver[*sql.Tx]
}

// kindOf names the kind, and so the driver package, of every known
// scheme, for the message when its package is not imported.
var kindOf = map[string]string{
	"postgres": "postgres", "postgresql": "postgres",
	"mysql": "mysql", "mariadb": "mysql",
	"sqlite": "sqlite", "sqlite3": "sqlite", "file": "sqlite",
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]*Kind{} // by scheme
)

// Register makes Parse and Open understand k's schemes. Driver packages
// call it from init.
func Register(k *Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	for _, s := range k.Schemes {
		kinds[s] = k
	}
}

// Parse parses a database URL. It does not connect.
func Parse(raw string) (*DB, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, fmt.Errorf("%w: it is empty", ErrBadURL)
	}
	scheme, _, ok := strings.Cut(raw, ":")
	if !ok {
		return nil, fmt.Errorf("%w: no scheme: use postgres://, mysql:// or sqlite:", ErrBadURL)
	}
	scheme = strings.ToLower(scheme)
	kindsMu.RLock()
	k := kinds[scheme]
	kindsMu.RUnlock()
	if k != nil {
		u, err := k.Parse(raw)
		if err == nil {
			u.NewDriver = k.NewDriver
		}
		return u, err
	}
	if name, known := kindOf[scheme]; known {
		return nil, fmt.Errorf("%w: %s: URLs need the %s driver: add import _ \"github.com/cqrsync/cqrsync/config/%s\" to the program", ErrNoDriver, scheme, name, name)
	}
	return nil, fmt.Errorf("%w: unknown scheme %q: use postgres://, mysql:// or sqlite:", ErrBadURL, scheme)
}

// Open parses raw and opens the database handle (sql.Open does not
// connect; the first query does).
func Open(raw string) (*sql.DB, *DB, error) {
	u, err := Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	if u.Kind == "sqlite" && u.mustExist {
		if _, err := os.Stat(u.path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s: check the path, or add ?mode=rwc to the URL to create it", ErrNoFile, u.path)
		}
	}
	db, err := sql.Open(u.Driver, u.DSN)
	if err != nil {
		// Driver errors may quote the DSN: do not pass them on.
		return nil, nil, fmt.Errorf("%w: the %s driver refused it", ErrBadURL, u.Kind)
	}
	return db, u, nil
}

// ParseURL parses a URL without letting the error quote it (it may hold a
// password).
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid URL (details withheld because it may contain a password); "+
			"percent-encode reserved characters in the user name and password", ErrBadURL)
	}
	return u, nil
}

// Password returns u's password, "" if none.
func Password(u *url.URL) string {
	if u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// ParsePostgres parses a postgres:// URL for the pgx driver ("pgx").
func ParsePostgres(raw string) (*DB, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return nil, fmt.Errorf("%w: %s has no host: use postgres://user:password@host:5432/db", ErrBadURL, u.Redacted())
	}
	return &DB{
		Kind: "postgres", Driver: "pgx", DSN: raw, Dialect: sqldialect.Postgres(),
		Redacted: u.Redacted(), Password: Password(u), ListenConnString: raw,
	}, nil
}

// ParseSQLite parses a sqlite: URL for modernc.org/sqlite ("sqlite").
func ParseSQLite(raw string) (*DB, error) {
	_, rest, _ := strings.Cut(raw, ":")
	var path, query string
	path, query, _ = strings.Cut(rest, "?")
	switch {
	case strings.HasPrefix(path, "///"): // sqlite:///abs/path.db
		path = path[2:]
	case strings.HasPrefix(path, "//"): // sqlite://relative.db (host part)
		path = path[2:]
	}
	if path == "" {
		return nil, fmt.Errorf("%w: sqlite URL has no file: use sqlite:///absolute/path.db or sqlite:relative.db", ErrBadURL)
	}
	if path == ":memory:" {
		return nil, fmt.Errorf("%w: an in-memory SQLite database is gone when the command exits: use a file", ErrBadURL)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite URL parameters: %v", ErrBadURL, err)
	}
	params := url.Values{}
	params.Add("_pragma", "busy_timeout(10000)")
	params.Add("_pragma", "journal_mode(WAL)")
	params.Set("_txlock", "immediate")
	params.Set("mode", "rw")
	for k, vs := range q {
		if k != "_pragma" {
			params.Del(k)
		}
		for _, v := range vs {
			params.Add(k, v)
		}
	}
	dsn := "file:" + path + "?" + params.Encode()
	redacted := "sqlite:" + path
	if strings.HasPrefix(path, "/") {
		redacted = "sqlite://" + path
	}
	return &DB{Kind: "sqlite", Driver: "sqlite", DSN: dsn, Dialect: sqldialect.SQLite(), Redacted: redacted,
		path: path, mustExist: params.Get("mode") == "rw"}, nil
}

// Package dburl turns the database URLs of cqrsync's configuration into a
// database/sql driver name, a DSN and the matching SQL dialect.
//
// Three schemes are understood:
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
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite"

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

	path      string // SQLite's file
	mustExist bool   // SQLite's file must exist (mode=rw)
}

// ErrBadURL is wrapped by every error of Parse.
var ErrBadURL = errors.New("bad database URL")

// ErrNoFile is wrapped by Open's error for a SQLite database file that does
// not exist (and that the URL does not ask to create with mode=rwc).
var ErrNoFile = errors.New("database file does not exist")

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
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return parsePostgres(raw)
	case "mysql", "mariadb":
		return parseMySQL(raw)
	case "sqlite", "sqlite3", "file":
		return parseSQLite(raw)
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

// parseURL parses a URL without letting the error quote it (it may hold a
// password).
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid URL (details withheld because it may contain a password); "+
			"percent-encode reserved characters in the user name and password", ErrBadURL)
	}
	return u, nil
}

func password(u *url.URL) string {
	if u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

func parsePostgres(raw string) (*DB, error) {
	u, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return nil, fmt.Errorf("%w: %s has no host: use postgres://user:password@host:5432/db", ErrBadURL, u.Redacted())
	}
	return &DB{
		Kind: "postgres", Driver: "pgx", DSN: raw, Dialect: sqldialect.Postgres(),
		Redacted: u.Redacted(), Password: password(u), ListenConnString: raw,
	}, nil
}

func parseMySQL(raw string) (*DB, error) {
	u, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	cfg := mysql.NewConfig()
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd = password(u)
	}
	cfg.Net = "tcp"
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("%w: %s has no host: use mysql://user:password@host:3306/db", ErrBadURL, u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(host, port)
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("%w: %s names no database: use mysql://user:password@host:3306/db", ErrBadURL, u.Redacted())
	}
	cfg.ParseTime = true
	q := u.Query()
	if !q.Has("time_zone") {
		q.Set("time_zone", "'+00:00'")
	}
	// Let the driver parse the parameters, so every one it knows works and
	// unknown ones become session variables, as in a DSN.
	dsn := cfg.FormatDSN()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	dsn += sep + q.Encode()
	if _, err := mysql.ParseDSN(dsn); err != nil {
		return nil, fmt.Errorf("%w: %s: bad parameter (details withheld because they may contain a password)", ErrBadURL, u.Redacted())
	}
	return &DB{Kind: "mysql", Driver: "mysql", DSN: dsn, Dialect: sqldialect.MySQL(), Redacted: u.Redacted(), Password: cfg.Passwd}, nil
}

func parseSQLite(raw string) (*DB, error) {
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

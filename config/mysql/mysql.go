// Package mysql lets package config open mysql:// (and mariadb://) database
// URLs with go-sql-driver/mysql, for MariaDB and MySQL. Import it for its
// side effect:
//
//	import _ "github.com/cqrsync/cqrsync/config/mysql"
//
// mysql://user:password@host:3306/db becomes a driver DSN with
// parseTime=true and the session time zone set to UTC (time_zone='+00:00',
// unless the URL sets time_zone); other query parameters go to the driver
// as they are.
package mysql

import (
	"fmt"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/cqrsync/cqrsync/internal/dburl"
	"github.com/cqrsync/cqrsync/sqldialect"
)

func init() {
	dburl.Register(&dburl.Kind{Name: "mysql", Schemes: []string{"mysql", "mariadb"}, Parse: parseMySQL})
}

// parseMySQL parses a mysql:// URL into a go-sql-driver/mysql DSN.
func parseMySQL(raw string) (*dburl.DB, error) {
	u, err := dburl.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	cfg := mysql.NewConfig()
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd = dburl.Password(u)
	}
	cfg.Net = "tcp"
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("%w: %s has no host: use mysql://user:password@host:3306/db", dburl.ErrBadURL, u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(host, port)
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("%w: %s names no database: use mysql://user:password@host:3306/db", dburl.ErrBadURL, u.Redacted())
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
	parsed, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: bad parameter (details withheld because they may contain a password)", dburl.ErrBadURL, u.Redacted())
	}
	if parsed.ClientFoundRows {
		// The replica tells an applied row from a dropped duplicate or
		// stale one by the rows the server reports changed.
		return nil, fmt.Errorf("%w: %s: clientFoundRows=true makes a dropped duplicate count as applied: remove it", dburl.ErrBadURL, u.Redacted())
	}
	return &dburl.DB{Kind: "mysql", Driver: "mysql", DSN: dsn, Dialect: sqldialect.MySQL(), Redacted: u.Redacted(), Password: cfg.Passwd}, nil
}

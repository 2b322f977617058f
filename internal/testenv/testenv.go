// Package testenv gives tests the connection URLs of the real services they
// run against, and decides what happens when a service is missing: locally
// the test is skipped with a hint, under CI=true it fails.
package testenv

import (
	"cmp"
	"context"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Default URLs of the services on a development machine (see TESTING.md).
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQLURL    = "root@tcp(127.0.0.1:3306)/test?parseTime=true&multiStatements=true"
	DefaultAMQPURL     = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultNATSURL     = "nats://127.0.0.1:4222"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// service is a failure, never a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Slow marks a test that takes more than a few seconds: go test -short
// (the short lane, see TESTING.md) skips it, saying why; the full run keeps
// it.
func Slow(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("slow, left out of go test -short: " + why)
	}
}

// PostgresURL returns CQRSYNC_POSTGRES_URL or the local default, after
// checking that the server answers.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	return require(tb, "CQRSYNC_POSTGRES_URL", DefaultPostgresURL, "127.0.0.1:5432")
}

// MySQLURL returns CQRSYNC_MYSQL_URL (a go-sql-driver/mysql DSN) or the local
// default, after checking that the server answers.
func MySQLURL(tb testing.TB) string {
	tb.Helper()
	return require(tb, "CQRSYNC_MYSQL_URL", DefaultMySQLURL, "127.0.0.1:3306")
}

// AMQPURL returns CQRSYNC_AMQP_URL or the local default, after checking that
// the broker answers.
func AMQPURL(tb testing.TB) string {
	tb.Helper()
	return require(tb, "CQRSYNC_AMQP_URL", DefaultAMQPURL, "127.0.0.1:5672")
}

// NATSURL returns CQRSYNC_NATS_URL or the local default, after checking that
// the server answers.
func NATSURL(tb testing.TB) string {
	tb.Helper()
	return require(tb, "CQRSYNC_NATS_URL", DefaultNATSURL, "127.0.0.1:4222")
}

func require(tb testing.TB, env, def, defAddr string) string {
	tb.Helper()
	u := cmp.Or(os.Getenv(env), def)
	addr := hostPort(u, defAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		msg := env + ": service at " + addr + " is not reachable (" + err.Error() + "); start it (see TESTING.md) or set " + env
		if InCI() {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	_ = conn.Close()
	return u
}

// hostPort finds the host:port of a URL or a MySQL DSN ("user@tcp(h:p)/db").
func hostPort(raw, def string) string {
	if pu, err := url.Parse(raw); err == nil && pu.Host != "" {
		return pu.Host
	}
	if i := strings.Index(raw, "tcp("); i >= 0 {
		rest := raw[i+4:]
		if j := strings.Index(rest, ")"); j >= 0 {
			return rest[:j]
		}
	}
	return def
}

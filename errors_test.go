package cqrsync_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cqrsync/cqrsync"
)

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"bad connection", fmt.Errorf("apply: %w", driver.ErrBadConn), true},
		{"deadline", context.DeadlineExceeded, true},
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"dropped mid-message", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"SQLite busy", errors.New("database is locked (5) (SQLITE_BUSY)"), true},
		{"PostgreSQL deadlock", errors.New("ERROR: deadlock detected (SQLSTATE 40P01)"), true},
		{"PostgreSQL serialization", errors.New("ERROR: could not serialize access due to concurrent update (SQLSTATE 40001)"), true},
		{"pgx connect", errors.New("failed to connect to `user=postgres database=test`: server error"), true},
		{"MariaDB deadlock", errors.New("Error 1213 (40001): Deadlock found when trying to get lock"), true},
		{"MariaDB lock wait", errors.New("Error 1205 (HY000): Lock wait timeout exceeded"), true},
		{"constraint", errors.New("ERROR: new row violates check constraint (SQLSTATE 23514)"), false},
		{"PostgreSQL shutdown, by code", fmt.Errorf("apply: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}), true},
		{"PostgreSQL connection failure, by code", &pgconn.PgError{Code: "08006", Message: "connection failure"}, true},
		{"PostgreSQL constraint, by code", &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}, false},
		{"missing fields", fmt.Errorf("%w: table t needs [a]", cqrsync.ErrMissingFields), false},
		{"malformed", cqrsync.ErrMalformedPayload, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := cqrsync.IsRetryable(c.err); got != c.want {
				t.Fatalf("IsRetryable(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

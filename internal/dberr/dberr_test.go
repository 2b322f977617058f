package dberr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cqrsync/cqrsync/internal/dberr"
)

func TestMySQLNumber(t *testing.T) {
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}
	for _, c := range []struct {
		name string
		err  error
		want uint16
		ok   bool
	}{
		{"bare", deadlock, 1213, true},
		{"wrapped", fmt.Errorf("apply: %w", deadlock), 1213, true},
		{"joined", errors.Join(errors.New("other"), fmt.Errorf("x: %w", deadlock)), 1213, true},
		{"text only", errors.New("Error 1213: Deadlock found"), 0, false},
		{"nil", nil, 0, false},
	} {
		n, ok := dberr.MySQLNumber(c.err)
		if n != c.want || ok != c.ok {
			t.Errorf("%s: MySQLNumber = %d, %v; want %d, %v", c.name, n, ok, c.want, c.ok)
		}
	}
}

func TestMySQLInvalidConn(t *testing.T) {
	if !dberr.MySQLInvalidConn(fmt.Errorf("commit: %w", mysql.ErrInvalidConn)) {
		t.Error("a wrapped mysql.ErrInvalidConn is not recognised")
	}
	if dberr.MySQLInvalidConn(fmt.Errorf("my handler: invalid connection to the CRM")) {
		t.Error("a longer text that mentions an invalid connection is taken for the driver's error")
	}
}

func TestPgConnClosed(t *testing.T) {
	if !dberr.PgConnClosed(fmt.Errorf("commit: %w", pgconn.ErrConnClosed)) {
		t.Error("a wrapped pgconn.ErrConnClosed is not recognised")
	}
	if dberr.PgConnClosed(errors.New("my handler: conn closed by the CRM")) {
		t.Error("a longer text that mentions a closed conn is taken for the driver's error")
	}
}

package cqrsync_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
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
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"dropped mid-message", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"pgx connection closed", fmt.Errorf("exec: %w", pgconn.ErrConnClosed), true},
		{"go-sql-driver invalid connection", mysql.ErrInvalidConn, true},
		{"PostgreSQL shutdown, by code", fmt.Errorf("apply: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}), true},
		{"PostgreSQL connection failure, by code", &pgconn.PgError{Code: "08006", Message: "connection failure"}, true},
		{"PostgreSQL deadlock, by code", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, true},
		{"PostgreSQL constraint, by code", &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}, false},
		{"PostgreSQL read-only after a failover", &pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}, true},
		{"PostgreSQL disk full", &pgconn.PgError{Code: "53100", Message: "could not extend file"}, true},
		{"PostgreSQL lock timeout", &pgconn.PgError{Code: "55P03", Message: "canceling statement due to lock timeout"}, true},
		{"PostgreSQL value too long", &pgconn.PgError{Code: "22001", Message: "value too long for type character varying(5)"}, false},
		{"MariaDB read-only", &mysql.MySQLError{Number: 1290, Message: "The MariaDB server is running with the --read-only option"}, true},
		{"MariaDB disk full", &mysql.MySQLError{Number: 1021, Message: "Disk full"}, true},
		{"MariaDB data too long", &mysql.MySQLError{Number: 1406, Message: "Data too long for column"}, false},
		{"MariaDB deadlock, by number", &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}, true},
		{"MariaDB lock wait, by number", &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}, true},
		{"MariaDB too many connections", &mysql.MySQLError{Number: 1040, Message: "Too many connections"}, true},
		{"MariaDB connection killed", &mysql.MySQLError{Number: 1927, Message: "Connection was killed"}, true},
		{"MariaDB server gone", &mysql.MySQLError{Number: 2006, Message: "MySQL server has gone away"}, true},
		{"MariaDB access denied", &mysql.MySQLError{Number: 1045, Message: "Access denied for user"}, false},
		{"MariaDB duplicate key", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
		// Words are not types: a user's text is the event's failure.
		{"text deadlock", errors.New("ERROR: deadlock detected (SQLSTATE 40P01)"), false},
		{"text lock wait", errors.New("Error 1205 (HY000): Lock wait timeout exceeded"), false},
		{"text database is locked", errors.New("database is locked"), false},
		// A deadline is the caller's, not the database's.
		{"deadline", context.DeadlineExceeded, false},
		{"deadline inside a network error", &net.OpError{Op: "read", Err: context.DeadlineExceeded}, false},
		{"canceled", fmt.Errorf("exec: %w", context.Canceled), false},
		{"constraint", errors.New("ERROR: new row violates check constraint (SQLSTATE 23514)"), false},
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

// TestIsRetryablePostgresConnectionKilled: a real PostgreSQL connection
// killed by the server (pg_terminate_backend) is retryable, both the error
// the killed statement gets and the one the connection gives after.
func TestIsRetryablePostgresConnectionKilled(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenPostgres(t)
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err := conn.ExecContext(t.Context(), "SELECT 1")
		if err == nil {
			t.Fatalf("statement %d on a killed connection succeeded", i+1)
		}
		if !cqrsync.IsRetryable(err) {
			t.Fatalf("statement %d on a killed connection: IsRetryable(%T %v) = false, want true", i+1, err, err)
		}
	}
}

// TestIsRetryableMariaDBDeadlock: a real MariaDB deadlock (error 1213) is
// retryable.
func TestIsRetryableMariaDBDeadlock(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenMySQL(t, "CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB", "INSERT INTO t VALUES (1, 0), (2, 0)")
	ctx := t.Context()
	tx1, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback() //nolint:errcheck
	tx2, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback() //nolint:errcheck
	if _, err := tx1.ExecContext(ctx, "UPDATE t SET v = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.ExecContext(ctx, "UPDATE t SET v = 2 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		_, err := tx1.ExecContext(ctx, "UPDATE t SET v = 1 WHERE id = 2") // waits for tx2
		errs <- err
	}()
	// Wait until tx1 waits for the lock, so tx2's statement closes the cycle.
	cqrsynctesting.Eventually(t, 10*time.Second, "tx1 to wait for a row lock", func() bool {
		var n int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'").Scan(&n)
		return err == nil && n > 0
	})
	_, err2 := tx2.ExecContext(ctx, "UPDATE t SET v = 2 WHERE id = 1")
	err1 := <-errs
	deadlock := err1
	if deadlock == nil {
		deadlock = err2
	}
	var me *mysql.MySQLError
	if !errors.As(deadlock, &me) || me.Number != 1213 {
		t.Fatalf("errors %v / %v, want a deadlock (1213)", err1, err2)
	}
	if !cqrsync.IsRetryable(deadlock) {
		t.Fatalf("IsRetryable(%v) = false, want true", deadlock)
	}
}

// TestErrorMessagesReadOnce: an error about an event says "cqrsync:" once,
// however many of the package's errors its chain holds.
func TestErrorMessagesReadOnce(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE acc (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`)
	replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "acc", Table: "acc"}); err != nil {
		t.Fatal(err)
	}
	apply := func(body string) error {
		p, err := cqrsync.DecodePayload([]byte(body), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = replica.Apply(t.Context(), sqldialect.FromSQL(db), p)
		return err
	}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"unknown model", apply(`{"signal_type":"SAVE","cqrs_id":"nope","instance_data":{"id":1},"instance_pk":1}`),
			"cqrsync: nope pk 1: unknown cqrs_id: this replica has not registered it"},
		{"missing fields", apply(`{"signal_type":"SAVE","cqrs_id":"acc","instance_data":{"id":1,"cqrs_revision":0,"cqrs_updated":"2026-01-01 00:00:00+00:00"},"instance_pk":1}`),
			"cqrsync: acc pk 1: required fields missing: table acc needs [name]"},
		{"malformed field", apply(`{"signal_type":"SAVE","cqrs_id":"acc","instance_data":{"id":1,"cqrs_revision":"x"},"instance_pk":1}`),
			"cqrsync: acc pk 1: malformed payload: key "},
		{"model error in a model error", &cqrsync.ModelError{CQRSID: "a", Err: &cqrsync.ModelError{CQRSID: "b", Err: cqrsync.ErrRowNotFound}},
			"cqrsync: a: b: row not found"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.HasPrefix(c.err.Error(), c.want) || strings.Count(c.err.Error(), "cqrsync:") != 1 {
			t.Errorf("%s: error %v, want it to begin %q and say \"cqrsync:\" once", c.name, c.err, c.want)
		}
	}
}

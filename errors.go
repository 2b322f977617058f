package cqrsync

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync/internal/dberr"

	"github.com/cqrsync/cqrsync/internal/errtext"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrUnknownModel is returned when a cqrs_id is not registered.
	ErrUnknownModel = errors.New("cqrsync: unknown cqrs_id")
	// ErrRowNotFound is returned by a capture call whose row is not in the
	// table (as seen inside the caller's transaction).
	ErrRowNotFound = errors.New("cqrsync: row not found")
	// ErrUnknownSignal is returned when applying a payload whose
	// signal_type is not SAVE, DELETE or SYNC.
	ErrUnknownSignal = errors.New("cqrsync: unknown signal_type")
	// ErrMissingFields is returned when an event lacks columns the replica
	// table requires.
	ErrMissingFields = errors.New("cqrsync: required fields missing")
)

// ModelError reports a problem with one model's event, with what identifies
// it in logs.
type ModelError struct {
	CQRSID string
	// PK is the event's instance_pk, nil when unknown.
	PK  any
	Err error
}

// Error reads "cqrsync: <cqrs_id> pk <pk>: <cause>", with "cqrsync: " once:
// the cause (often a sentinel error such as ErrUnknownModel, which reads
// "cqrsync: unknown cqrs_id" on its own) is quoted without it.
func (e *ModelError) Error() string {
	if e.PK == nil {
		return fmt.Sprintf("cqrsync: %s: %s", e.CQRSID, errtext.Cause(e.Err))
	}
	return fmt.Sprintf("cqrsync: %s pk %v: %s", e.CQRSID, e.PK, errtext.Cause(e.Err))
}

// Unwrap returns the cause.
func (e *ModelError) Unwrap() error { return e.Err }

// infraError marks a failure that cannot be the event's fault (the
// database could not even begin a transaction).
type infraError struct{ err error }

func (e infraError) Error() string   { return e.err.Error() }
func (e infraError) Unwrap() error   { return e.err }
func (e infraError) Retryable() bool { return true }

// eventError marks a failure that belongs to the event, whatever it wraps:
// its model's QueryTimeout ran out, or its custom handler failed for a
// reason other than the replica database. It goes through the retry
// policy to the dead letters.
type eventError struct{ err error }

func (e eventError) Error() string   { return e.err.Error() }
func (e eventError) Unwrap() error   { return e.err }
func (e eventError) Retryable() bool { return false }

// IsRetryable reports whether err is a transient failure of the replica or
// master database (a dropped connection, a server shutting down, too many
// connections, a deadlock or lock wait timeout) that the same work
// overcomes by trying again later, as opposed to a problem with the event
// itself (bad data, a constraint violation, its model's QueryTimeout, a
// custom handler's own error) that needs the retry policy and, in the end,
// the dead-letter queue.
//
// It decides by the error's type, never by its words: a failure marked
// where it happened (a transaction that could not begin), the drivers'
// typed errors (a PostgreSQL SQLSTATE, a MySQL/MariaDB error number, an
// SQLite busy code, driver.ErrBadConn, a connection closed under pgx or
// go-sql-driver), and network errors. A context's deadline or cancellation
// is not retryable by itself.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false // a deadline of the caller's: not the database's failure
	}
	if databaseFailure(err) {
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true // a connection dropped mid-message
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// databaseFailure reports whether err is a database driver's typed error
// that says the database or the connection failed, not the statement.
func databaseFailure(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || dberr.PgConnClosed(err) || dberr.MySQLInvalidConn(err) {
		return true
	}
	if retryableSQLState(sqlState(err)) {
		return true
	}
	if n, ok := dberr.MySQLNumber(err); ok {
		return retryableMySQLError(n)
	}
	var se interface{ Code() int } // modernc.org/sqlite's *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6, // SQLITE_BUSY, SQLITE_LOCKED
			10, 13, 14: // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
			return true
		}
	}
	return false
}

// retryableSQLState reports whether a PostgreSQL error code says the
// server or the connection failed, not the statement: a connection
// exception (class 08), a shutdown or restart (57P01–57P03), insufficient
// resources (class 53: disk full, out of memory, too many connections), an
// I/O error (58030), a read-only transaction (25006: a standby, or a primary
// demoted by a failover), or a serialization failure, deadlock or lock
// timeout (55P03), which another attempt resolves.
func retryableSQLState(code string) bool {
	switch code {
	case "40001", "40P01", "55P03", "25006", "58030", "57P01", "57P02", "57P03":
		return true
	}
	return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "53")
}

// retryableMySQLError reports whether a MySQL/MariaDB error number says the
// server or the connection failed, or the transaction lost a lock race
// that another attempt resolves.
func retryableMySQLError(n uint16) bool {
	switch n {
	case 1021, // ER_DISK_FULL
		1040, // ER_CON_COUNT_ERROR: too many connections
		1053, // ER_SERVER_SHUTDOWN
		1114, // ER_RECORD_FILE_FULL: the table is full
		1152, // ER_ABORTING_CONNECTION
		1158, // ER_NET_READ_ERROR
		1159, // ER_NET_READ_INTERRUPTED
		1160, // ER_NET_ERROR_ON_WRITE
		1161, // ER_NET_WRITE_INTERRUPTED
		1290, // ER_OPTION_PREVENTS_STATEMENT: read-only (a replica, or a failover)
		1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
		1836, // ER_READ_ONLY_MODE
		4031, // ER_CLIENT_INTERACTION_TIMEOUT: disconnected for inactivity
		1205, // ER_LOCK_WAIT_TIMEOUT
		1213, // ER_LOCK_DEADLOCK
		1927, // ER_CONNECTION_KILLED (MariaDB)
		2002, // CR_CONNECTION_ERROR
		2003, // CR_CONN_HOST_ERROR
		2006, // CR_SERVER_GONE_ERROR
		2013: // CR_SERVER_LOST
		return true
	}
	return false
}

// sqlState returns the PostgreSQL error code (SQLSTATE) of the first error
// in err's chain that has one (pgx's *pgconn.PgError, lib/pq's *pq.Error),
// or "".
func sqlState(err error) string {
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		return st.SQLState()
	}
	return ""
}

// undefinedColumnOrTable reports whether err says a statement named a
// column or a table that does not exist: PostgreSQL's SQLSTATE 42703 or
// 42P01, MySQL/MariaDB's ER_BAD_FIELD_ERROR (1054) or ER_NO_SUCH_TABLE
// (1146), or SQLite's SQLITE_ERROR with its "no such column", "has no
// column named" or "no such table" text (SQLite has no narrower code).
func undefinedColumnOrTable(err error) bool {
	if code := sqlState(err); code == "42703" || code == "42P01" {
		return true
	}
	if n, ok := dberr.MySQLNumber(err); ok {
		return n == 1054 || n == 1146
	}
	// modernc.org/sqlite's *sqlite.Error, whose code is SQLITE_ERROR (1)
	var se interface{ Code() int }
	if errors.As(err, &se) && se.Code()&0xff == 1 {
		msg := err.Error()
		return strings.Contains(msg, "no such column") || strings.Contains(msg, "has no column named") || strings.Contains(msg, "no such table")
	}
	return false
}

// lockConflict reports whether err is a deadlock, a serialization failure
// or a lock wait timeout: the database works, and the transaction lost a
// race with another one.
func lockConflict(err error) bool {
	if code := sqlState(err); code == "40001" || code == "40P01" {
		return true
	}
	n, ok := dberr.MySQLNumber(err)
	return ok && (n == 1205 || n == 1213)
}

// namedDuration is a configuration duration, for negativeDurations.
type namedDuration struct {
	field string
	d     time.Duration
	zero  string // what 0 means, for the fix
}

// negativeDurations returns an error for each negative duration of a
// configuration, naming the field and the fix.
func negativeDurations(config string, ds []namedDuration) []error {
	var errs []error
	for _, d := range ds {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("cqrsync: %s.%s is negative (%v): use a positive duration, or %s", config, d.field, d.d, d.zero))
		}
	}
	return errs
}

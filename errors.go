package cqrsync

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
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

func (e *ModelError) Error() string {
	if e.PK == nil {
		return fmt.Sprintf("cqrsync: %s: %v", e.CQRSID, e.Err)
	}
	return fmt.Sprintf("cqrsync: %s pk %v: %v", e.CQRSID, e.PK, e.Err)
}

// Unwrap returns the cause.
func (e *ModelError) Unwrap() error { return e.Err }

// infraError marks a failure that cannot be the event's fault (the
// database could not even begin a transaction).
type infraError struct{ err error }

func (e infraError) Error() string   { return e.err.Error() }
func (e infraError) Unwrap() error   { return e.err }
func (e infraError) Retryable() bool { return true }

// IsRetryable reports whether err is a transient failure of the
// infrastructure (a dropped connection, a busy or locked database, a
// deadlock, a timeout) that the same work can overcome by trying again
// later, as opposed to a problem with the event itself (bad data, a
// constraint violation) that needs the retry policy and, in the end, the
// dead-letter queue. It is the one classifier the consumer and the relay use.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	var st interface{ SQLState() string } // pgx's *pgconn.PgError, lib/pq's *pq.Error
	if errors.As(err, &st) && retryableSQLState(st.SQLState()) {
		return true
	}
	// Drivers report these as plain errors; their texts are stable.
	msg := strings.ToLower(err.Error())
	for _, s := range retryableTexts {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// retryableSQLState reports whether a PostgreSQL error code says the
// server or the connection failed, not the statement: a connection
// exception (class 08), a shutdown or restart (57P01–57P03), too many
// connections, or a serialization failure or deadlock, which another
// attempt resolves.
func retryableSQLState(code string) bool {
	switch code {
	case "40001", "40P01", "53300", "57P01", "57P02", "57P03":
		return true
	}
	return strings.HasPrefix(code, "08")
}

var retryableTexts = []string{
	"database is locked",       // SQLite SQLITE_BUSY
	"database table is locked", // SQLite SQLITE_LOCKED
	"connection refused",
	"failed to connect", // pgx
	"conn closed",       // pgx: the connection broke earlier
	"unexpected eof",    // a connection dropped mid-message
	"connection reset",
	"broken pipe",
	"bad connection",
	"deadlock",             // PostgreSQL 40P01, MySQL 1213
	"could not serialize",  // PostgreSQL 40001
	"lock wait timeout",    // MySQL 1205
	"too many connections", // PostgreSQL 53300, MySQL 1040
	"the database system is starting up",
	"the database system is shutting down",
	"server closed the connection",
	"invalid connection", // go-sql-driver/mysql
	"driver: bad connection",
}

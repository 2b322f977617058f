// Package dberr reads database drivers' typed errors without linking the
// drivers: a program that uses PostgreSQL only must not carry the MySQL
// driver because cqrsync classifies its errors.
package dberr

import (
	"errors"
	"reflect"
)

// mysqlPkg is the import path of github.com/go-sql-driver/mysql, whose
// *MySQLError carries the server's error number in its Number field.
const mysqlPkg = "github.com/go-sql-driver/mysql"

// MySQLNumber returns the error number of the first *mysql.MySQLError of
// go-sql-driver/mysql in err's chain (ER_LOCK_DEADLOCK is 1213, say).
func MySQLNumber(err error) (uint16, bool) {
	var n uint16
	found := walk(err, func(e error) bool {
		v := reflect.ValueOf(e)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			return false
		}
		t := v.Type().Elem()
		if t.Kind() != reflect.Struct || t.Name() != "MySQLError" || t.PkgPath() != mysqlPkg {
			return false
		}
		f := v.Elem().FieldByName("Number")
		if !f.IsValid() || f.Kind() != reflect.Uint16 {
			return false
		}
		n = uint16(f.Uint())
		return true
	})
	return n, found
}

// MySQLInvalidConn reports whether err's chain holds go-sql-driver/mysql's
// ErrInvalidConn: the connection broke after a statement was sent. The
// driver declares it with errors.New, so it is recognised by its text and
// by its having no cause of its own.
func MySQLInvalidConn(err error) bool { return hasSentinel(err, "invalid connection") }

// PgConnClosed reports whether err's chain holds pgx's pgconn.ErrConnClosed:
// a statement was attempted on a closed connection. pgconn declares it with
// errors.New, so it is recognised by its text and by its having no cause
// of its own.
func PgConnClosed(err error) bool { return hasSentinel(err, "conn closed") }

// hasSentinel reports whether err's chain holds an error made by
// errors.New(text): one with that text, of errors.New's type, and without
// a cause of its own.
func hasSentinel(err error, text string) bool {
	return walk(err, func(e error) bool {
		return errors.Unwrap(e) == nil && reflect.TypeOf(e).String() == "*errors.errorString" && e.Error() == text
	})
}

// walk calls match on err and every error it wraps (Unwrap() error and
// Unwrap() []error), depth first, until match returns true.
func walk(err error, match func(error) bool) bool {
	if err == nil {
		return false
	}
	if match(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), match)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, match) {
				return true
			}
		}
	}
	return false
}

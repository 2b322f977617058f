// Package errtext keeps cqrsync's error messages reading "cqrsync: " once.
//
// Every error the module returns begins with [Prefix], so that a message
// on its own says where it comes from. An error that quotes another as its
// cause quotes it without that prefix: "cqrsync: account pk 1: unknown
// cqrs_id", not "cqrsync: account pk 1: cqrsync: unknown cqrs_id".
package errtext

import (
	"fmt"
	"slices"
	"strings"
)

// Prefix begins every error message of the module.
const Prefix = "cqrsync: "

// Cause returns err's message as the cause inside another message: without
// its leading Prefix.
func Cause(err error) string {
	return strings.TrimPrefix(err.Error(), Prefix)
}

// Errorf is fmt.Errorf whose error arguments are quoted as causes (see
// Cause). Wrapped errors (%w) stay wrapped: errors.Is and errors.As see
// them.
func Errorf(format string, args ...any) error {
	args = slices.Clone(args) // the caller's slice stays as it was
	for i, a := range args {
		if err, ok := a.(error); ok && err != nil {
			args[i] = cause{err}
		}
	}
	return fmt.Errorf(format, args...)
}

// cause is an error quoted without its prefix.
type cause struct{ err error }

func (c cause) Error() string { return Cause(c.err) }
func (c cause) Unwrap() error { return c.err }

// Truncate returns s cut to at most n bytes, for quoting input of any
// length in a message or a header.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

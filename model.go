package cqrsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// Names of the two columns every master and replica table carries.
const (
	RevisionField = "cqrs_revision"
	UpdatedField  = "cqrs_updated"
)

// ErrSchema is matched (errors.Is) by the errors about a table or column
// that a registered model needs and the database lacks: a configuration
// problem to fix in the schema or the model, which retrying cannot solve.
var ErrSchema = errors.New("cqrsync: the database lacks a table or column a model needs")

// schemaError is an error about the schema, matching ErrSchema and
// wrapping its cause.
type schemaError struct {
	msg   string
	cause error
}

func (e *schemaError) Error() string        { return e.msg }
func (e *schemaError) Unwrap() error        { return e.cause }
func (e *schemaError) Is(target error) bool { return target == ErrSchema }

// errSchema returns a schemaError with a formatted message.
func errSchema(cause error, format string, args ...any) error {
	return &schemaError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// tableInfo is what cqrsync knows of a table's columns: their order, types
// and constraints. It is read from the database once, on first use, and
// merged with the types a model declares.
type tableInfo struct {
	columns []sqldialect.Column
	types   map[string]ValueType
	byName  map[string]int
}

func (ti *tableInfo) has(col string) bool { _, ok := ti.byName[col]; return ok }

// tableCache introspects tables lazily, once each.
type tableCache struct {
	dialect sqldialect.Dialect
	mu      sync.Mutex
	tables  map[string]*tableInfo
}

func (c *tableCache) get(ctx context.Context, ex sqldialect.Executor, table string, declared map[string]ValueType) (*tableInfo, error) {
	c.mu.Lock()
	ti, ok := c.tables[table]
	c.mu.Unlock()
	if ok {
		return ti, nil
	}
	cols, err := c.dialect.TableColumns(ctx, ex, table)
	if errors.Is(err, sqldialect.ErrNoTable) {
		return nil, errSchema(err, "cqrsync: table %s does not exist: create it, or fix the model's table name", table)
	}
	if err != nil {
		return nil, err
	}
	ti = &tableInfo{columns: cols, types: make(map[string]ValueType, len(cols)), byName: make(map[string]int, len(cols))}
	for i, col := range cols {
		ti.byName[col.Name] = i
		ti.types[col.Name] = ValueTypeOfSQL(col.DeclaredType)
	}
	for name, t := range declared {
		if !ti.has(name) {
			return nil, errSchema(nil, "cqrsync: table %s has no column %q (declared in Types)", table, name)
		}
		ti.types[name] = t
	}
	ti.types[RevisionField] = TypeInt
	ti.types[UpdatedField] = TypeDateTime
	for _, need := range []string{RevisionField, UpdatedField} {
		if !ti.has(need) {
			return nil, errSchema(nil, "cqrsync: table %s has no %s column: add it (see the package docs for the DDL)", table, need)
		}
	}
	c.mu.Lock()
	if c.tables == nil {
		c.tables = make(map[string]*tableInfo)
	}
	c.tables[table] = ti
	c.mu.Unlock()
	return ti, nil
}

// validName reports whether s is usable as a CQRS ID or queue name: a topic
// word, with none of '.', '*', '#' or spaces.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*# \t\n")
}

// keyString is the canonical text of a primary key value, used as the
// tombstone key and in logs.
func keyString(v any) string {
	switch k := v.(type) {
	case string:
		return k
	case []byte:
		return string(k)
	default:
		return fmt.Sprint(k)
	}
}

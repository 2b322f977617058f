package cqrsync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/cqrsync/cqrsync/internal/errtext"
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

// tableInfo is what cqrsync knows of a model's table: the columns' order,
// types and constraints, merged with the types the model declares. It is
// read from the database once per model, by Check or on first use, and
// again after Check finds problems with the table or a statement fails on
// a column or table that is not there (see tableCache.evictStale).
type tableInfo struct {
	columns []sqldialect.Column
	types   map[string]ValueType
	byName  map[string]int

	// triggers says whether the table has capture triggers (package
	// capture/trigger); read with the columns by a master's cache.
	triggers bool
	// uniqueKeys says whether the table has a unique key besides its
	// primary key, which a replica's upserts must know on MySQL (see
	// sqldialect.UpsertParams.UniqueKeys).
	uniqueKeys bool
}

func (ti *tableInfo) has(col string) bool { _, ok := ti.byName[col]; return ok }

// tableCache holds the table metadata of each model, keyed by CQRS ID: two
// models on one table may declare different Types.
type tableCache struct {
	dialect schemaStore
	// triggers, when set, tells whether a table has capture triggers; read
	// looks with the columns (a master's cache), so that captures need not
	// ask in the caller's transaction.
	triggers func(ctx context.Context, ex sqldialect.Executor, table string) (bool, error)
	mu       sync.Mutex
	models   map[string]*tableInfo
}

// get returns the metadata of the model cqrsID, whose table is table and
// whose declared types are declared, reading it on first use.
func (c *tableCache) get(ctx context.Context, ex sqldialect.Executor, cqrsID, table string, declared map[string]ValueType) (*tableInfo, error) {
	c.mu.Lock()
	ti, ok := c.models[cqrsID]
	c.mu.Unlock()
	if ok {
		return ti, nil
	}
	ti, problems, err := c.read(ctx, ex, table, declared)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		var cause error
		if ti == nil {
			cause = sqldialect.ErrNoTable
		}
		return nil, errSchema(cause, "cqrsync: %s", strings.Join(problems, "; "))
	}
	c.put(cqrsID, ti)
	return ti, nil
}

// put caches the metadata of the model cqrsID.
func (c *tableCache) put(cqrsID string, ti *tableInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.models == nil {
		c.models = make(map[string]*tableInfo)
	}
	c.models[cqrsID] = ti
}

// evict forgets the metadata ti of the model cqrsID, so that its next use
// re-reads the table, if ti is still the cached entry (a nil ti evicts
// whatever is cached). Of the statements that failed on one stale entry,
// the first evicts it; the others leave alone the entry re-read since.
func (c *tableCache) evict(cqrsID string, ti *tableInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ti == nil || c.models[cqrsID] == ti {
		delete(c.models, cqrsID)
	}
}

// evictStale evicts ti, the metadata a failed statement of the model
// cqrsID was built from, when err says the statement named a column or a
// table that is not there, or met a unique key the metadata lacks
// (sqldialect.ErrUnknownUniqueKey): the table changed since it was read,
// and the next attempt re-reads it. It returns err.
func (c *tableCache) evictStale(cqrsID string, ti *tableInfo, err error) error {
	if err != nil && (undefinedColumnOrTable(err) || errors.Is(err, sqldialect.ErrUnknownUniqueKey)) {
		c.evict(cqrsID, ti)
	}
	return err
}

// read describes table with the declared types merged in. problems lists
// what the table lacks for them, each with what to do: the table itself
// (ti is then nil), the version columns, a column declared in Types. err is
// a failure to look.
func (c *tableCache) read(ctx context.Context, ex sqldialect.Executor, table string, declared map[string]ValueType) (ti *tableInfo, problems []string, err error) {
	cols, err := c.dialect.TableColumns(ctx, ex, table)
	if errors.Is(err, sqldialect.ErrNoTable) {
		return nil, []string{fmt.Sprintf("table %s does not exist: create it, with the model's columns and %s and %s (see the package docs), or fix the model's table name", table, RevisionField, UpdatedField)}, nil
	}
	if err != nil {
		return nil, nil, errtext.Errorf("cqrsync: reading the columns of table %s: %w", table, err)
	}
	ti = &tableInfo{columns: cols, types: make(map[string]ValueType, len(cols)), byName: make(map[string]int, len(cols))}
	if c.triggers != nil {
		if ti.triggers, err = c.triggers(ctx, ex, table); err != nil {
			return nil, nil, errtext.Errorf("cqrsync: looking for capture triggers on table %s: %w", table, err)
		}
	}
	for i, col := range cols {
		ti.byName[col.Name] = i
		ti.types[col.Name] = ValueTypeOfSQL(col.DeclaredType)
		ti.uniqueKeys = ti.uniqueKeys || col.Unique
	}
	var version, undeclared []string
	for _, need := range []string{RevisionField, UpdatedField} {
		if !ti.has(need) {
			version = append(version, need)
		}
	}
	if len(version) > 0 {
		ddl := make([]string, len(version))
		for i, col := range version {
			ddl[i] = c.dialect.AddVersionColumnSQL(table, col)
		}
		them := "them"
		if len(version) == 1 {
			them = "it"
		}
		problems = append(problems, fmt.Sprintf("table %s has no column %s: add %s: %s", table, strings.Join(version, ", "), them, strings.Join(ddl, "; ")))
	}
	for _, name := range slices.Sorted(maps.Keys(declared)) {
		if !ti.has(name) {
			undeclared = append(undeclared, name)
			continue
		}
		ti.types[name] = declared[name]
	}
	if len(undeclared) > 0 {
		problems = append(problems, fmt.Sprintf("table %s has no column %s (declared in Types): add it, or fix the model's Types", table, strings.Join(undeclared, ", ")))
	}
	ti.types[RevisionField] = TypeInt
	ti.types[UpdatedField] = TypeDateTime
	return ti, problems, nil
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

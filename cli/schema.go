package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// cqrsync's own tables, created by migrate.
const (
	outboxTable     = "cqrs_outbox"
	tombstonesTable = "cqrs_tombstones"
)

// schemaCheck collects what a command finds missing in the database before
// it starts, so that it can name all of it at once.
type schemaCheck struct {
	ctx      context.Context
	ex       sqldialect.Executor
	d        sqldialect.Dialect
	problems []string
}

func (s *session) schemaCheck() *schemaCheck {
	return &schemaCheck{ctx: s.ctx, ex: s.ex(), d: s.app.Dialect}
}

// columns returns a table's column names; ok is false when the table does
// not exist; err is a failure to look.
func (c *schemaCheck) columns(table string) (cols []string, ok bool, err error) {
	desc, err := c.d.TableColumns(c.ctx, c.ex, table)
	if errors.Is(err, sqldialect.ErrNoTable) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading the columns of table %s: %w", table, err)
	}
	for _, col := range desc {
		cols = append(cols, col.Name)
	}
	return cols, true, nil
}

// migrated checks that migrate created cqrsync's tables.
func (c *schemaCheck) migrated(tables ...string) error {
	for _, table := range tables {
		_, ok, err := c.columns(table)
		if err != nil {
			return err
		}
		if !ok {
			c.problems = append(c.problems, fmt.Sprintf("table %s does not exist: run cqrsync migrate (or apply the SQL of cqrsync migrate --print)", table))
		}
	}
	return nil
}

// replicaModels checks the tables of the given replica models: each exists
// and has the primary key, cqrs_revision, cqrs_updated, the columns the
// model's Mapping writes (unless a handler writes the data) and those its
// Types declare.
func (c *schemaCheck) replicaModels(r *cqrsync.Replica, ids []string) error {
	for _, id := range ids {
		rm, ok := r.Model(id)
		if !ok || rm.NoDBOperations {
			continue
		}
		cols, ok, err := c.columns(rm.Table)
		if err != nil {
			return err
		}
		prefix := "replica model " + id + ": table " + rm.Table
		if !ok {
			c.problems = append(c.problems, fmt.Sprintf("%s does not exist: create it, with the model's columns and %s and %s (see the package docs of cqrsync)",
				prefix, cqrsync.RevisionField, cqrsync.UpdatedField))
			continue
		}
		var version, other []string
		for _, need := range []string{cqrsync.RevisionField, cqrsync.UpdatedField} {
			if !slices.Contains(cols, need) {
				version = append(version, need)
			}
		}
		if !slices.Contains(cols, rm.PK) {
			other = append(other, rm.PK+" (the primary key)")
		}
		if rm.OnSave == nil {
			for _, from := range slices.Sorted(maps.Keys(rm.Mapping)) {
				if to := rm.Mapping[from]; !slices.Contains(cols, to) && to != rm.PK {
					other = append(other, fmt.Sprintf("%s (mapped from %s)", to, from))
				}
			}
		}
		for _, name := range slices.Sorted(maps.Keys(rm.Types)) {
			if !slices.Contains(cols, name) {
				other = append(other, name+" (declared in types)")
			}
		}
		if len(version) > 0 {
			ddl := make([]string, len(version))
			for i, col := range version {
				ddl[i] = addColumnSQL(c.d, rm.Table, col)
			}
			them := "them"
			if len(version) == 1 {
				them = "it"
			}
			c.problems = append(c.problems, fmt.Sprintf("%s has no column %s: add %s: %s", prefix, strings.Join(version, ", "), them, strings.Join(ddl, "; ")))
		}
		if len(other) > 0 {
			c.problems = append(c.problems, fmt.Sprintf("%s has no column %s: add it, or fix the model's pk, mapping or types", prefix, strings.Join(other, ", ")))
		}
	}
	return nil
}

// err returns what was found missing as a usage error (exit 2), nil if
// nothing was.
func (c *schemaCheck) err() error {
	switch len(c.problems) {
	case 0:
		return nil
	case 1:
		return UsageError{Err: errors.New(c.problems[0])}
	}
	return UsageError{Err: fmt.Errorf("the database lacks what this command needs (%d problems):\n  %s", len(c.problems), strings.Join(c.problems, "\n  "))}
}

// addColumnSQL is the DDL that adds one of the two version columns.
func addColumnSQL(d sqldialect.Dialect, table, col string) string {
	typ := "INTEGER NOT NULL DEFAULT 0"
	if col == cqrsync.UpdatedField {
		typ = map[string]string{"postgres": "TIMESTAMPTZ", "mysql": "DATETIME(6)"}[d.Name()]
		if typ == "" {
			typ = "DATETIME"
		}
	}
	return fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", d.QuoteIdent(table), d.QuoteIdent(col), typ)
}

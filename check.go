package cqrsync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// Check verifies, before the first capture, that the database holds what
// the master needs: cqrsync's outbox as the current migration creates it
// (see [CheckOutbox]) and, for each of cqrsIDs (every registered model when
// none is given), the model's table with its primary key, cqrs_revision,
// cqrs_updated, Fields, TrackedFields, the columns FieldNames renames and
// those Types declares. It returns nil, or one error wrapping ErrSchema that
// lists every problem with what to do. It caches the metadata of each model
// it found complete, so that captures do not read it inside the caller's
// transaction, and forgets that of each model it found problems with, so
// that the next capture re-reads the table.
func (m *Master[TTx]) Check(ctx context.Context, ex sqldialect.Executor, cqrsIDs ...string) error {
	problems, err := checkMigration(ctx, m.drv.Dialect(), ex, sqldialect.OutboxTable)
	if err != nil {
		return err
	}
	if m.cfg.Outbox == OutboxWAL {
		p, err := checkWALLevel(ctx, ex)
		if err != nil {
			return err
		}
		problems = append(problems, p...)
	}
	if len(cqrsIDs) == 0 {
		cqrsIDs = m.Models()
	}
	for _, id := range cqrsIDs {
		mm, err := m.model(id)
		if err != nil {
			return err
		}
		found, err := m.tables.check(ctx, ex, "master model", id, mm.Table, mm.Types, func(ti *tableInfo) []string { return masterProblems(mm, ti) })
		if err != nil {
			return err
		}
		problems = append(problems, found...)
	}
	return schemaProblems(problems)
}

// Check verifies, before the first event, that the database holds what the
// replica needs: cqrsync's tombstones as the current migration creates them
// and, for each of cqrsIDs (every registered model when none is given;
// models with NoDBOperations have no table to check), the model's table
// with its primary key, cqrs_revision, cqrs_updated, the columns its Mapping
// writes (unless OnSave writes the data) and those its Types declares. It
// returns nil, or one error wrapping ErrSchema that lists every problem with
// what to do. It caches the metadata of each model it found complete, so
// that applying does not read it inside the batch's transaction, and
// forgets that of each model it found problems with, so that the next
// event re-reads the table.
func (r *Replica) Check(ctx context.Context, ex sqldialect.Executor, cqrsIDs ...string) error {
	problems, err := checkMigration(ctx, r.db.Dialect(), ex, sqldialect.TombstonesTable)
	if err != nil {
		return err
	}
	if len(cqrsIDs) == 0 {
		cqrsIDs = r.Models()
	}
	for _, id := range cqrsIDs {
		rm, ok := r.Model(id)
		if !ok {
			return fmt.Errorf("%w %q: register it with Replica.Register (registered: %s)", ErrUnknownModel, id, strings.Join(r.Models(), ", "))
		}
		if rm.NoDBOperations {
			continue
		}
		found, err := r.tables.check(ctx, ex, "replica model", id, rm.Table, rm.Types, func(ti *tableInfo) []string { return replicaProblems(rm, ti) })
		if err != nil {
			return err
		}
		problems = append(problems, found...)
	}
	return schemaProblems(problems)
}

// check reads the table of the model cqrsID (kind says master or replica
// model) and lists its problems, those of tableCache.read and those more
// finds, each prefixed with the model; it caches the metadata when there
// are none, and evicts what was cached when there are some.
func (c *tableCache) check(ctx context.Context, ex sqldialect.Executor, kind, cqrsID, table string, declared map[string]ValueType, more func(*tableInfo) []string) ([]string, error) {
	ti, found, err := c.read(ctx, ex, table, declared)
	if err != nil {
		return nil, err
	}
	if ti != nil {
		found = append(found, more(ti)...)
	}
	if len(found) == 0 {
		c.put(cqrsID, ti)
	} else {
		c.evict(cqrsID, nil) // what a running replica or master cached is stale
	}
	for i, p := range found {
		found[i] = kind + " " + cqrsID + ": " + p
	}
	return found, nil
}

// replicaProblems lists what the model's table lacks for its primary key
// and the columns its Mapping writes (beyond what tableCache.read checks).
func replicaProblems(rm *ReplicaModel, ti *tableInfo) []string {
	var missing []string
	if !ti.has(rm.PK) {
		missing = append(missing, rm.PK+" (the primary key)")
	}
	if rm.OnSave == nil {
		for _, from := range slices.Sorted(maps.Keys(rm.Mapping)) {
			if to := rm.Mapping[from]; !ti.has(to) && to != rm.PK {
				missing = append(missing, fmt.Sprintf("%s (mapped from %s)", to, from))
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("table %s has no column %s: add it, or fix the model's PK or Mapping", rm.Table, strings.Join(missing, ", "))}
}

// CheckOutbox verifies that cqrsync's outbox exists in the master database
// db with the columns the current migration creates (what a relay needs).
// It returns nil, or an error wrapping ErrSchema that says what to run.
func CheckOutbox(ctx context.Context, db sqldialect.DB) error {
	problems, err := checkMigration(ctx, db.Dialect(), db.Pool(), sqldialect.OutboxTable)
	if err != nil {
		return err
	}
	return schemaProblems(problems)
}

// checkMigration lists what the given tables of cqrsync lack against the
// current migration ([sqldialect.MigrationColumns]); err is a failure to
// look.
func checkMigration(ctx context.Context, d sqldialect.Dialect, ex sqldialect.Executor, tables ...string) ([]string, error) {
	const run = "run cqrsync migrate (or Dialect.Migrate, or apply the SQL of cqrsync migrate --print)"
	var problems []string
	for _, table := range tables {
		cols, err := d.TableColumns(ctx, ex, table)
		if errors.Is(err, sqldialect.ErrNoTable) {
			problems = append(problems, fmt.Sprintf("table %s does not exist: %s", table, run))
			continue
		}
		if err != nil {
			return nil, errtext.Errorf("cqrsync: reading the columns of table %s: %w", table, err)
		}
		var missing []string
		for _, want := range sqldialect.MigrationColumns(d)[table] {
			if !slices.ContainsFunc(cols, func(c sqldialect.Column) bool { return c.Name == want }) {
				missing = append(missing, want)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("table %s has no column %s, which the current migration creates: %s; if the table was made by hand, drop it first", table, strings.Join(missing, ", "), run))
		}
	}
	return problems, nil
}

// schemaProblems turns a list of problems into one error wrapping
// ErrSchema, nil if there are none.
func schemaProblems(problems []string) error {
	switch len(problems) {
	case 0:
		return nil
	case 1:
		return errSchema(nil, "%s", problems[0])
	}
	return errSchema(nil, "the database lacks what the models need (%d problems):\n  %s", len(problems), strings.Join(problems, "\n  "))
}

// checkWALLevel reports a PostgreSQL server whose wal_level cannot feed a
// WAL relay (MasterConfig.Outbox = OutboxWAL).
func checkWALLevel(ctx context.Context, ex sqldialect.Executor) ([]string, error) {
	rows, err := ex.Query(ctx, "SELECT current_setting('wal_level')")
	if err != nil {
		return nil, fmt.Errorf("cqrsync: read wal_level: %w", err)
	}
	defer rows.Close()
	var level string
	if rows.Next() {
		if err := rows.Scan(&level); err != nil {
			return nil, fmt.Errorf("cqrsync: read wal_level: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cqrsync: read wal_level: %w", err)
	}
	if level == "logical" {
		return nil, nil
	}
	return []string{fmt.Sprintf("wal_level is %q, and outbox: wal needs \"logical\": run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL (on a managed database, see docs/wal.md)", level)}, nil
}

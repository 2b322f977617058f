package cqrsync

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// ScanOpts configures [Master.Scan] and [Replica.ScanKeys].
type ScanOpts struct {
	// Filter selects rows, in the language of ParseFilter (for example
	// {"id__in": [1, 2]}). Empty selects every row.
	Filter string
	// BatchSize is the number of rows per page. Default 10000.
	BatchSize int
	// Progress, when set, is called after each page with the rows read so
	// far and the total that matched the filter when the scan started
	// (which costs one COUNT).
	Progress func(done, total int64)
	// InstanceData asks Master.Scan to fill MasterRow.InstanceData.
	InstanceData bool
}

// MasterRow is one row of a master model's table, as [Master.Scan] reads it.
type MasterRow struct {
	// PK is the primary key, as a wire value.
	PK any
	// Columns holds every column of the row as a wire value, in table order:
	// what the model's IsSyncInstance and Serializer get.
	Columns Object
	// InstanceData is the row's instance_data as a SYNC of it carries it
	// (through the model's Serializer, if any); set only when
	// ScanOpts.InstanceData asks for it.
	InstanceData Object
}

// Model returns the registered model for cqrsID.
func (m *Master[TTx]) Model(cqrsID string) (*MasterModel, bool) {
	mm, err := m.model(cqrsID)
	return mm, err == nil
}

// Scan reads the rows of a model's table that match opts.Filter in keyset
// pages ordered by primary key (never OFFSET), and calls fn with each page,
// so it is safe on a live table of any size; ex is the master database.
// Every page is a statement of its own: rows changed meanwhile are seen as
// they are when their page is read. An error of fn stops the scan and is
// returned.
func (m *Master[TTx]) Scan(ctx context.Context, ex sqldialect.Executor, cqrsID string, opts *ScanOpts, fn func(page []MasterRow) error) error {
	if opts == nil {
		opts = &ScanOpts{}
	}
	return m.walk(ctx, ex, cqrsID, opts.Filter, cmp.Or(opts.BatchSize, 10000), opts.Progress, func(mm *MasterModel, rows []masterRow) error {
		var datas []Object
		if opts.InstanceData {
			var err error
			if datas, err = m.instanceDatas(ctx, ex, mm, rows); err != nil {
				return err
			}
		}
		page := make([]MasterRow, len(rows))
		for i, r := range rows {
			page[i] = MasterRow{PK: r.pk, Columns: r.all}
			if datas != nil {
				page[i].InstanceData = datas[i]
			}
		}
		return fn(page)
	})
}

// walk calls fn with keyset pages of the model's rows that match filter.
func (m *Master[TTx]) walk(ctx context.Context, ex sqldialect.Executor, cqrsID, filterText string, batch int, progress func(done, total int64), fn func(*MasterModel, []masterRow) error) error {
	mm, ti, err := m.modelTable(ctx, ex, cqrsID)
	if err != nil {
		return err
	}
	filter, err := ParseFilter(filterText, ti.types)
	if err != nil {
		return err
	}
	var total, done int64
	if progress != nil {
		if total, err = m.dialect.CountRows(ctx, ex, mm.Table, filter.Conds()); err != nil {
			return err
		}
	}
	cols := make([]string, len(ti.columns))
	for i, c := range ti.columns {
		cols[i] = c.Name
	}
	pkIndex := ti.byName[mm.PK]
	var after any
	for {
		rows, err := m.dialect.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{
			Table: mm.Table, PKColumn: mm.PK, Columns: cols, After: after, Limit: batch, Where: filter.Conds(),
		})
		if err != nil {
			return err
		}
		var page []masterRow
		var lastKey any
		if err := scanRawObjects(rows, cols, ti, func(raw []any, o Object) {
			page = append(page, masterRow{pk: o[pkIndex].Value, all: o})
			lastKey = raw[pkIndex]
		}); err != nil {
			return errtext.Errorf("cqrsync: read %s: %w", mm.Table, err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(mm, page); err != nil {
			return err
		}
		done += int64(len(page))
		if progress != nil {
			progress(done, total)
		}
		if len(page) < batch {
			return nil
		}
		after = lastKey
	}
}

// MissingKeys returns those of keys (wire values, as a replica or a diff
// stream lists them) that have no row in the model's table, in their
// order. A key that cannot be a value of the primary key column is an error
// matching [ErrInvalidValue] that names it.
func (m *Master[TTx]) MissingKeys(ctx context.Context, ex sqldialect.Executor, cqrsID string, keys []any) ([]any, error) {
	mm, ti, err := m.modelTable(ctx, ex, cqrsID)
	if err != nil {
		return nil, err
	}
	pkType := ti.types[mm.PK]
	exists := map[string]bool{}
	for chunk := range slices.Chunk(keys, 5000) {
		args, err := columnKeys(pkType, chunk)
		if err != nil {
			return nil, err
		}
		rows, err := m.dialect.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{Table: mm.Table, PKColumn: mm.PK, Columns: []string{mm.PK}, PKs: args})
		if err != nil {
			return nil, err
		}
		if err := scanRawObjects(rows, []string{mm.PK}, ti, func(_ []any, o Object) { exists[keyString(o[0].Value)] = true }); err != nil {
			return nil, err
		}
	}
	var gone []any
	for _, k := range keys {
		wire, err := WireValue(pkType, mustColumn(pkType, k))
		if err != nil || !exists[keyString(wire)] {
			gone = append(gone, k)
		}
	}
	return gone, nil
}

// columnKeys converts keys to values of a primary key column of type t.
func columnKeys(t ValueType, keys []any) ([]any, error) {
	out := make([]any, len(keys))
	for i, k := range keys {
		var err error
		if out[i], err = ColumnValue(t, k); err != nil {
			return nil, fmt.Errorf("key %v: %w", k, err)
		}
	}
	return out, nil
}

func mustColumn(t ValueType, v any) any {
	c, err := ColumnValue(t, v)
	if err != nil {
		return v
	}
	return c
}

// tableModel returns a replica model that has a table, and the table.
func (r *Replica) tableModel(ctx context.Context, ex sqldialect.Executor, cqrsID string) (*ReplicaModel, *tableInfo, error) {
	rm, ok := r.Model(cqrsID)
	if !ok {
		return nil, nil, fmt.Errorf("%w %q: this replica has not registered it (registered: %s)", ErrUnknownModel, cqrsID, strings.Join(r.Models(), ", "))
	}
	if rm.NoDBOperations {
		return nil, nil, fmt.Errorf("cqrsync: model %s has no table (NoDBOperations)", cqrsID)
	}
	ti, err := r.tables.get(ctx, ex, rm.CQRSID, rm.Table, rm.Types)
	return rm, ti, err
}

// ScanKeys reads the primary keys of the model's table that match
// opts.Filter in keyset pages of opts.BatchSize, in key order, and calls fn
// with each page (wire values). ex is the replica database. An error of fn
// stops the scan and is returned. ScanOpts.Progress and InstanceData are
// ignored.
func (r *Replica) ScanKeys(ctx context.Context, ex sqldialect.Executor, cqrsID string, opts *ScanOpts, fn func(keys []any) error) error {
	if opts == nil {
		opts = &ScanOpts{}
	}
	rm, ti, err := r.tableModel(ctx, ex, cqrsID)
	if err != nil {
		return err
	}
	filter, err := ParseFilter(opts.Filter, ti.types)
	if err != nil {
		return err
	}
	batch := cmp.Or(opts.BatchSize, 10000)
	var after any
	for {
		rows, err := r.dialect.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{
			Table: rm.Table, PKColumn: rm.PK, Columns: []string{rm.PK}, After: after, Limit: batch, Where: filter.Conds(),
		})
		if err != nil {
			return err
		}
		var keys []any
		err = scanRawObjects(rows, []string{rm.PK}, ti, func(raw []any, o Object) {
			keys = append(keys, o[0].Value)
			after = raw[0]
		})
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		if len(keys) < batch {
			return nil
		}
	}
}

// Revisions returns the stored cqrs_revision of each of keys (wire values,
// as a master or a diff stream lists them), aligned with keys: -1 for a key
// with no row. A key that cannot be a value of the primary key column is an
// error matching [ErrInvalidValue] that names it.
func (r *Replica) Revisions(ctx context.Context, ex sqldialect.Executor, cqrsID string, keys []any) ([]int64, error) {
	rm, ti, err := r.tableModel(ctx, ex, cqrsID)
	if err != nil {
		return nil, err
	}
	pkType := ti.types[rm.PK]
	args, err := columnKeys(pkType, keys)
	if err != nil {
		return nil, err
	}
	stored := make(map[string]int64, len(keys))
	for chunk := range slices.Chunk(args, 5000) {
		rows, err := r.dialect.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{
			Table: rm.Table, PKColumn: rm.PK, Columns: []string{rm.PK, RevisionField}, PKs: chunk,
		})
		if err != nil {
			return nil, err
		}
		err = scanRawObjects(rows, []string{rm.PK, RevisionField}, ti, func(raw []any, o Object) {
			pk, _ := ColumnValue(pkType, o[0].Value)
			rev, _ := o[1].Value.(int64)
			stored[keyString(pk)] = rev
		})
		if err != nil {
			return nil, err
		}
	}
	revs := make([]int64, len(args))
	for i, k := range args {
		rev, ok := stored[keyString(k)]
		if !ok {
			rev = -1
		}
		revs[i] = rev
	}
	return revs, nil
}

// DeleteKeys deletes the rows of the model's table with the given keys
// (wire values) and returns how many it deleted. It records no tombstone:
// it repairs a replica that kept rows its master deleted. A key that cannot
// be a value of the primary key column is an error matching
// [ErrInvalidValue] that names it, and nothing is deleted.
func (r *Replica) DeleteKeys(ctx context.Context, ex sqldialect.Executor, cqrsID string, keys []any) (int64, error) {
	rm, ti, err := r.tableModel(ctx, ex, cqrsID)
	if err != nil {
		return 0, err
	}
	args, err := columnKeys(ti.types[rm.PK], keys)
	if err != nil {
		return 0, err
	}
	return r.dialect.DeleteRows(ctx, ex, rm.Table, rm.PK, args)
}

package cqrsync

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// The diff and repair pipeline speaks django-cqrs's line formats
// (cqrs_diff_master | cqrs_diff_replica | cqrs_diff_sync, and
// cqrs_deleted_diff_replica | cqrs_deleted_diff_master |
// cqrs_deleted_sync_replica), so a pipe can mix Go and Django services. Every
// line ends with "\n"; the first line is "<cqrs_id>,<datetime>" (plus
// ",<queue>" after diff-replica); the others are compact JSON, one per batch.

// ErrBadDiffStream is wrapped by errors about a diff stream's format.
var ErrBadDiffStream = errors.New("cqrsync: bad diff stream")

// DiffOpts configures the diff commands that read a table.
type DiffOpts struct {
	// Filter selects rows (see ParseFilter). Empty selects every row.
	Filter string
	// BatchSize is the number of keys per line. Default 10000.
	BatchSize int
}

// DiffMaster writes the master side of a diff: the header line, then per
// batch a JSON list of [pk, cqrs_revision] pairs. Rows refused by the
// model's IsSyncInstance are left out.
func (m *Master[TTx]) DiffMaster(ctx context.Context, ex sqldialect.Executor, cqrsID string, w io.Writer, opts *DiffOpts) error {
	if opts == nil {
		opts = &DiffOpts{}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s,%s\n", cqrsID, FormatDateTime(m.now()))
	err := m.walk(ctx, ex, cqrsID, opts.Filter, cmp.Or(opts.BatchSize, 10000), nil, func(mm *MasterModel, page []masterRow) error {
		pairs := make([]any, 0, len(page))
		for _, r := range page {
			if mm.IsSyncInstance != nil && !mm.IsSyncInstance(r.all) {
				continue
			}
			rev, _ := r.all.Get(RevisionField)
			pairs = append(pairs, []any{r.pk, rev})
		}
		if len(pairs) == 0 {
			return nil
		}
		return writeJSONLine(bw, pairs)
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func writeJSONLine(w *bufio.Writer, v any) error {
	b, err := AppendJSON(nil, v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// diffHeader parses a stream's first line: "<cqrs_id>,<datetime>[,<queue>]".
func diffHeader(sc *bufio.Scanner) (line, cqrsID, queue string, err error) {
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return "", "", "", err
		}
		return "", "", "", fmt.Errorf("%w: the input is empty; its first line must be \"<cqrs_id>,<datetime>\"", ErrBadDiffStream)
	}
	line = strings.TrimRight(sc.Text(), "\r")
	parts := strings.Split(line, ",")
	if len(parts) < 2 || parts[0] == "" {
		return "", "", "", fmt.Errorf("%w: first line %q is not \"<cqrs_id>,<datetime>\"", ErrBadDiffStream, truncate(line, 80))
	}
	if len(parts) > 2 {
		queue = parts[len(parts)-1]
	}
	return line, parts[0], queue, nil
}

func newLineScanner(in io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	return sc
}

// DiffReplica reads DiffMaster's stream and writes the keys the replica
// lacks or holds at another revision: the header with ",<queue>" appended,
// then, for each input line with differences, a JSON list of those keys (as
// the master wrote them). It returns every such key.
func (r *Replica) DiffReplica(ctx context.Context, ex sqldialect.Executor, queue string, in io.Reader, w io.Writer) ([]any, error) {
	sc := newLineScanner(in)
	header, cqrsID, _, err := diffHeader(sc)
	if err != nil {
		return nil, err
	}
	rm, ti, err := r.tableModel(ctx, ex, cqrsID)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s,%s\n", header, queue)
	var all []any
	for lineNo := 2; sc.Scan(); lineNo++ {
		v, err := DecodeJSON(sc.Bytes())
		pairs, ok := v.([]any)
		if err != nil || !ok {
			return all, fmt.Errorf("%w: line %d is not a JSON list of [pk, revision] pairs", ErrBadDiffStream, lineNo)
		}
		keys := make([]any, len(pairs))
		want := make(map[string]int64, len(pairs))
		for i, pair := range pairs {
			pr, ok := pair.([]any)
			if !ok || len(pr) != 2 {
				return all, fmt.Errorf("%w: line %d: %v is not a [pk, revision] pair", ErrBadDiffStream, lineNo, pair)
			}
			if keys[i], err = ColumnValue(ti.types[rm.PK], pr[0]); err != nil {
				return all, fmt.Errorf("%w: line %d: key %v: %v", ErrBadDiffStream, lineNo, pr[0], err)
			}
			rev, err := ColumnValue(TypeInt, pr[1])
			if err != nil {
				return all, fmt.Errorf("%w: line %d: revision %v: %v", ErrBadDiffStream, lineNo, pr[1], err)
			}
			want[keyString(keys[i])] = rev.(int64)
		}
		have, err := r.revisions(ctx, ex, rm, ti, keys)
		if err != nil {
			return all, err
		}
		var diff []any
		for i, pair := range pairs {
			rev, ok := have[keyString(keys[i])]
			if !ok || rev != want[keyString(keys[i])] {
				diff = append(diff, pair.([]any)[0])
			}
		}
		if len(diff) > 0 {
			all = append(all, diff...)
			if err := writeJSONLine(bw, diff); err != nil {
				return all, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return all, err
	}
	return all, bw.Flush()
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

// revisions reads the stored revision of each key that exists.
func (r *Replica) revisions(ctx context.Context, ex sqldialect.Executor, rm *ReplicaModel, ti *tableInfo, keys []any) (map[string]int64, error) {
	out := make(map[string]int64, len(keys))
	for chunk := range slices.Chunk(keys, 5000) {
		rows, err := r.dialect.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{
			Table: rm.Table, PKColumn: rm.PK, Columns: []string{rm.PK, RevisionField}, PKs: chunk,
		})
		if err != nil {
			return nil, err
		}
		err = scanRawObjects(rows, []string{rm.PK, RevisionField}, ti, func(raw []any, o Object) {
			pk, _ := ColumnValue(ti.types[rm.PK], o[0].Value)
			rev, _ := o[1].Value.(int64)
			out[keyString(pk)] = rev
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DiffSync reads DiffReplica's stream and sends a SYNC of each listed row to
// the queue named at the end of its first line ("None" broadcasts), through
// the outbox. It returns the rows synced and the keys processed.
func (m *Master[TTx]) DiffSync(ctx context.Context, ex sqldialect.Executor, in io.Reader) (synced, processed int64, err error) {
	sc := newLineScanner(in)
	_, cqrsID, queue, err := diffHeader(sc)
	if err != nil {
		return 0, 0, err
	}
	if queue == "None" {
		queue = ""
	}
	mm, err := m.model(cqrsID)
	if err != nil {
		return 0, 0, err
	}
	for lineNo := 2; sc.Scan(); lineNo++ {
		v, err := DecodeJSON(sc.Bytes())
		keys, ok := v.([]any)
		if err != nil || !ok {
			return synced, processed, fmt.Errorf("%w: line %d is not a JSON list of keys", ErrBadDiffStream, lineNo)
		}
		filter, err := AppendJSON(nil, Object{{Key: mm.PK + "__in", Value: keys}})
		if err != nil {
			return synced, processed, err
		}
		n, err := m.SyncQuery(ctx, ex, cqrsID, &SyncOpts{Filter: string(filter), Queue: queue})
		if err != nil {
			return synced, processed, err
		}
		synced += n
		processed += int64(len(keys))
	}
	return synced, processed, sc.Err()
}

// DeletedDiffReplica writes the replica side of a deleted-rows diff: the
// header line, then per batch a JSON list of the replica's keys.
func (r *Replica) DeletedDiffReplica(ctx context.Context, ex sqldialect.Executor, cqrsID string, w io.Writer, opts *DiffOpts) error {
	if opts == nil {
		opts = &DiffOpts{}
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
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s,%s\n", cqrsID, FormatDateTime(r.cfg.Now().UTC()))
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
			if err := writeJSONLine(bw, keys); err != nil {
				return err
			}
		}
		if len(keys) < batch {
			return bw.Flush()
		}
	}
}

// DeletedDiffMaster reads DeletedDiffReplica's stream and writes the keys
// that no longer exist on the master: the header, then per input line the
// list of such keys, when not empty. It returns every such key.
func (m *Master[TTx]) DeletedDiffMaster(ctx context.Context, ex sqldialect.Executor, in io.Reader, w io.Writer) ([]any, error) {
	sc := newLineScanner(in)
	header, cqrsID, _, err := diffHeader(sc)
	if err != nil {
		return nil, err
	}
	mm, ti, err := m.modelTable(ctx, ex, cqrsID)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n", header)
	var all []any
	for lineNo := 2; sc.Scan(); lineNo++ {
		v, err := DecodeJSON(sc.Bytes())
		keys, ok := v.([]any)
		if err != nil || !ok {
			return all, fmt.Errorf("%w: line %d is not a JSON list of keys", ErrBadDiffStream, lineNo)
		}
		exists := map[string]bool{}
		for chunk := range slices.Chunk(keys, 5000) {
			args := make([]any, len(chunk))
			for i, k := range chunk {
				if args[i], err = ColumnValue(ti.types[mm.PK], k); err != nil {
					return all, fmt.Errorf("%w: line %d: key %v: %v", ErrBadDiffStream, lineNo, k, err)
				}
			}
			rows, err := m.dialect.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{Table: mm.Table, PKColumn: mm.PK, Columns: []string{mm.PK}, PKs: args})
			if err != nil {
				return all, err
			}
			if err := scanRawObjects(rows, []string{mm.PK}, ti, func(_ []any, o Object) { exists[keyString(o[0].Value)] = true }); err != nil {
				return all, err
			}
		}
		var gone []any
		for _, k := range keys {
			wire, err := WireValue(ti.types[mm.PK], mustColumn(ti.types[mm.PK], k))
			if err != nil || !exists[keyString(wire)] {
				gone = append(gone, k)
			}
		}
		if len(gone) > 0 {
			all = append(all, gone...)
			if err := writeJSONLine(bw, gone); err != nil {
				return all, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return all, err
	}
	return all, bw.Flush()
}

func mustColumn(t ValueType, v any) any {
	c, err := ColumnValue(t, v)
	if err != nil {
		return v
	}
	return c
}

// DeletedSyncReplica reads DeletedDiffMaster's stream and deletes the
// listed rows from the replica. It returns how many it deleted.
func (r *Replica) DeletedSyncReplica(ctx context.Context, ex sqldialect.Executor, in io.Reader) (int64, error) {
	sc := newLineScanner(in)
	_, cqrsID, _, err := diffHeader(sc)
	if err != nil {
		return 0, err
	}
	rm, ti, err := r.tableModel(ctx, ex, cqrsID)
	if err != nil {
		return 0, err
	}
	var deleted int64
	for lineNo := 2; sc.Scan(); lineNo++ {
		v, err := DecodeJSON(sc.Bytes())
		keys, ok := v.([]any)
		if err != nil || !ok {
			return deleted, fmt.Errorf("%w: line %d is not a JSON list of keys", ErrBadDiffStream, lineNo)
		}
		args := make([]any, len(keys))
		for i, k := range keys {
			if args[i], err = ColumnValue(ti.types[rm.PK], k); err != nil {
				return deleted, fmt.Errorf("%w: line %d: key %v: %v", ErrBadDiffStream, lineNo, k, err)
			}
		}
		n, err := r.dialect.DeleteRows(ctx, ex, rm.Table, rm.PK, args)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, sc.Err()
}

package cqrsync

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// DumpOpts configures Master.Dump.
type DumpOpts struct {
	// Filter selects rows (see ParseFilter). Empty dumps every row.
	Filter string
	// BatchSize is the number of rows read at a time. Default 10000.
	BatchSize int
	// Progress, when set, is called after each batch with the rows processed
	// so far and the total when the dump started.
	Progress func(done, total int64)
	// SkipRefused leaves out the rows the model's IsSyncInstance refuses,
	// as a SYNC does. Default false: every row is written, as django-cqrs's
	// cqrs_bulk_dump does.
	SkipRefused bool
}

// Dump writes a model's rows in django-cqrs's bulk dump format
// (cqrs_bulk_dump): the CQRS ID on the first line, then each row's
// instance_data exactly as a SYNC would carry it, one compact JSON object
// per line, with no newline after the last line. As in django-cqrs, rows
// the model's IsSyncInstance refuses are written too, unless
// DumpOpts.SkipRefused is set. It walks the table in
// keyset pages, so it is safe on a live table of any size; ex is the master
// database. It returns the rows written and processed.
func (m *Master[TTx]) Dump(ctx context.Context, ex sqldialect.Executor, cqrsID string, w io.Writer, opts *DumpOpts) (written, processed int64, err error) {
	if opts == nil {
		opts = &DumpOpts{}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(cqrsID); err != nil {
		return 0, 0, err
	}
	var line []byte
	err = m.walk(ctx, ex, cqrsID, opts.Filter, cmp.Or(opts.BatchSize, 10000), opts.Progress, func(mm *MasterModel, page []masterRow) error {
		datas, err := m.instanceDatas(ctx, ex, mm, page)
		if err != nil {
			return err
		}
		for i, row := range page {
			processed++
			if opts.SkipRefused && mm.IsSyncInstance != nil && !mm.IsSyncInstance(row.all) {
				continue
			}
			line, err = AppendJSON(append(line[:0], '\n'), datas[i])
			if err != nil {
				return &ModelError{CQRSID: cqrsID, PK: row.pk, Err: err}
			}
			if _, err := bw.Write(line); err != nil {
				return err
			}
			written++
		}
		return nil
	})
	if err != nil {
		return written, processed, err
	}
	return written, processed, bw.Flush()
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
	d := m.dialect
	var total, done int64
	if progress != nil {
		if total, err = d.CountRows(ctx, ex, mm.Table, filter.Conds()); err != nil {
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
		rows, err := d.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{
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

// LoadOpts configures Replica.Load.
type LoadOpts struct {
	// BatchSize is the number of lines applied per transaction. Default
	// 10000, as django-cqrs.
	BatchSize int
	// Clear deletes every row of the model's table (in the first batch's
	// transaction) before loading. Default false: rows are merged by the
	// SAVE rules, so a load never overwrites a newer row.
	Clear bool
	// OnBadLine, when set, is told about each line that is skipped, with its
	// 1-based line number.
	OnBadLine func(line int, err error)
	// Progress, when set, is called after each committed batch with the
	// lines read so far.
	Progress func(lines int64)
}

// LoadResult is what Replica.Load did.
type LoadResult struct {
	CQRSID string
	// Lines is the number of data lines read (after the CQRS ID line).
	Lines int64
	// Loaded counts the rows that were created or updated.
	Loaded int64
	// Unchanged counts rows already as new or newer (duplicates, stale).
	Unchanged int64
	// Skipped counts bad lines (not JSON, or rejected by the table).
	Skipped int64
	// Committed is the number of data lines whose batch committed: after an
	// error, the load can resume after this many lines.
	Committed int64
}

// ErrBadDump is wrapped by errors about a dump file as a whole (an empty
// file, an unknown CQRS ID on its first line).
var ErrBadDump = errors.New("cqrsync: bad dump")

// Load reads a dump in django-cqrs's bulk format (see Master.Dump) and
// applies each row with SAVE semantics, through the same guarded writes as
// events: a row older than or as new as the stored one changes nothing. It
// commits every BatchSize lines. A line that is not JSON or that the table
// rejects is reported to OnBadLine and skipped; a database failure, or a
// table or column the model needs and the database lacks (ErrSchema,
// checked before the first line), stops the load, and
// LoadResult.Committed says how far it got. It runs on the replica's
// database (the driver passed to NewReplica).
func (r *Replica) Load(ctx context.Context, in io.Reader, opts *LoadOpts) (*LoadResult, error) {
	if opts == nil {
		opts = &LoadOpts{}
	}
	batchSize := cmp.Or(opts.BatchSize, 10000)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	res := &LoadResult{}
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return res, errtext.Errorf("cqrsync: load: %w", err)
		}
		return res, fmt.Errorf("%w: the input is empty; its first line must be the CQRS ID", ErrBadDump)
	}
	res.CQRSID = strings.TrimSpace(sc.Text())
	rm, ok := r.Model(res.CQRSID)
	if !ok {
		return res, fmt.Errorf("%w: first line %q is not a CQRS ID registered on this replica (%s)", ErrBadDump, truncate(res.CQRSID, 80), strings.Join(r.Models(), ", "))
	}
	if rm.NoDBOperations {
		return res, fmt.Errorf("%w: model %s has no table (NoDBOperations)", ErrBadDump, res.CQRSID)
	}
	// A missing table or column would fail every line: say it once.
	if _, err := r.tables.get(ctx, r.db.Pool(), rm.CQRSID, rm.Table, rm.Types); err != nil {
		return res, errtext.Errorf("cqrsync: load: %w", err)
	}
	now := r.cfg.Now()
	clear := opts.Clear
	lineNo := 1
	type entry struct {
		line int
		p    *Payload
	}
	var batch []entry
	bad := func(line int, err error) {
		res.Skipped++
		if opts.OnBadLine != nil {
			opts.OnBadLine(line, err)
		}
	}
	flush := func() error {
		if len(batch) == 0 && !clear {
			return nil
		}
		// One transaction per batch; if a line fails, the batch is applied
		// again line by line so the others go through.
		apply := func(entries []entry, reportBad bool) (bool, error) {
			var loaded, same int64
			skipped := false
			err := r.db.RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
				if clear {
					if _, err := r.dialect.DeleteAllRows(ctx, ex, rm.Table); err != nil {
						return errtext.Errorf("cqrsync: load: clear %s: %w", rm.Table, err)
					}
				}
				ps := make([]*Payload, len(entries))
				for i, e := range entries {
					ps[i] = e.p
				}
				outs, err := r.ApplyBatch(ctx, ex, ps)
				if err != nil {
					if IsRetryable(err) || ctx.Err() != nil || !reportBad || errors.Is(err, ErrSchema) {
						return err
					}
					bad(entries[0].line, err) // reportBad applies one line at a time
					skipped = true
					return err // roll the line back
				}
				for _, out := range outs {
					if out.Applied() {
						loaded++
					} else {
						same++
					}
				}
				return nil
			})
			if skipped {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			clear = false
			res.Loaded += loaded
			res.Unchanged += same
			return true, nil
		}
		if _, err := apply(batch, false); err != nil {
			if IsRetryable(err) || ctx.Err() != nil || errors.Is(err, ErrSchema) {
				return err // the database's failure or the caller's deadline, not the lines'
			}
			for _, e := range batch {
				if _, err := apply([]entry{e}, true); err != nil {
					return err
				}
			}
		}
		res.Committed += int64(len(batch))
		batch = batch[:0]
		if opts.Progress != nil {
			opts.Progress(res.Lines)
		}
		return nil
	}
	for sc.Scan() {
		lineNo++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		res.Lines++
		v, err := DecodeJSON(text)
		data, isObj := v.(Object)
		if err != nil || !isObj {
			if err == nil {
				err = errors.New("not a JSON object")
			}
			bad(lineNo, fmt.Errorf("%w: %v", ErrMalformedPayload, err))
			continue
		}
		pk, _ := data.Get(rmSourcePK(rm))
		batch = append(batch, entry{line: lineNo, p: &Payload{SignalType: SignalSave, CQRSID: res.CQRSID, InstanceData: data, InstancePK: pk, Expires: now.Add(time.Hour)}})
		if len(batch) >= batchSize {
			if err := flush(); err != nil {
				return res, errtext.Errorf("cqrsync: load stopped after %d committed lines: %w", res.Committed, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, errtext.Errorf("cqrsync: load: reading line %d: %w (the %d lines before were committed)", lineNo+1, err, res.Committed)
	}
	if err := flush(); err != nil {
		return res, errtext.Errorf("cqrsync: load stopped after %d committed lines: %w", res.Committed, err)
	}
	return res, nil
}

// rmSourcePK is the instance_data key that carries the replica's primary
// key: the master field mapped to it, or the same name.
func rmSourcePK(rm *ReplicaModel) string {
	for from, to := range rm.Mapping {
		if to == rm.PK {
			return from
		}
	}
	return rm.PK
}

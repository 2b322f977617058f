package tools

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// Master is what the master-side tools use of a *cqrsync.Master[TTx],
// whatever its transaction type.
type Master interface {
	// Model returns the registered model for a CQRS ID.
	Model(cqrsID string) (*cqrsync.MasterModel, bool)
	// Scan reads a model's rows in keyset pages.
	Scan(ctx context.Context, ex sqldialect.Executor, cqrsID string, opts *cqrsync.ScanOpts, fn func(page []cqrsync.MasterRow) error) error
	// MissingKeys returns the keys that have no row.
	MissingKeys(ctx context.Context, ex sqldialect.Executor, cqrsID string, keys []any) ([]any, error)
	// SyncQuery enqueues SYNCs of the rows a filter selects.
	SyncQuery(ctx context.Context, ex sqldialect.Executor, cqrsID string, opts *cqrsync.SyncOpts) (int64, error)
}

var _ Master = (*cqrsync.Master[*sql.Tx])(nil)

// DumpOpts configures Dump.
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
func Dump(ctx context.Context, m Master, ex sqldialect.Executor, cqrsID string, w io.Writer, opts *DumpOpts) (written, processed int64, err error) {
	if opts == nil {
		opts = &DumpOpts{}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(cqrsID); err != nil {
		return 0, 0, err
	}
	mm, _ := m.Model(cqrsID) // Scan reports an unknown model
	var line []byte
	scan := &cqrsync.ScanOpts{Filter: opts.Filter, BatchSize: cmp.Or(opts.BatchSize, 10000), Progress: opts.Progress, InstanceData: true}
	err = m.Scan(ctx, ex, cqrsID, scan, func(page []cqrsync.MasterRow) error {
		for _, row := range page {
			processed++
			if opts.SkipRefused && mm.IsSyncInstance != nil && !mm.IsSyncInstance(row.Columns) {
				continue
			}
			line, err = cqrsync.AppendJSON(append(line[:0], '\n'), row.InstanceData)
			if err != nil {
				return &cqrsync.ModelError{CQRSID: cqrsID, PK: row.PK, Err: err}
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

// LoadOpts configures Load.
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
	// Now is the clock that dates the loaded rows' events (an hour of
	// validity, which handlers may see). Default time.Now.
	Now func() time.Time
}

// LoadResult is what Load did.
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

// Load reads a dump in django-cqrs's bulk format (see [Dump]) and
// applies each row with SAVE semantics, through the same guarded writes as
// events: a row older than or as new as the stored one changes nothing. It
// commits every BatchSize lines. A line that is not JSON or that the table
// rejects is reported to OnBadLine and skipped; a database failure, or a
// table or column the model needs and the database lacks (cqrsync.ErrSchema,
// checked before the first line), stops the load, and
// LoadResult.Committed says how far it got. It runs on the replica's
// database (the driver passed to cqrsync.NewReplica).
func Load(ctx context.Context, r *cqrsync.Replica, in io.Reader, opts *LoadOpts) (*LoadResult, error) {
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
		return res, fmt.Errorf("%w: first line %q is not a CQRS ID registered on this replica (%s)", ErrBadDump, errtext.Truncate(res.CQRSID, 80), strings.Join(r.Models(), ", "))
	}
	if rm.NoDBOperations {
		return res, fmt.Errorf("%w: model %s has no table (NoDBOperations)", ErrBadDump, res.CQRSID)
	}
	// A missing table or column would fail every line: say it once.
	if err := r.Check(ctx, r.DB().Pool(), rm.CQRSID); err != nil {
		return res, errtext.Errorf("cqrsync: load: %w", err)
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	clear := opts.Clear
	lineNo := 1
	type entry struct {
		line int
		p    *cqrsync.Payload
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
			err := r.DB().RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
				if clear {
					if _, err := r.Dialect().DeleteAllRows(ctx, ex, rm.Table); err != nil {
						return errtext.Errorf("cqrsync: load: clear %s: %w", rm.Table, err)
					}
				}
				ps := make([]*cqrsync.Payload, len(entries))
				for i, e := range entries {
					ps[i] = e.p
				}
				outs, err := r.ApplyBatch(ctx, ex, ps)
				if err != nil {
					if cqrsync.IsRetryable(err) || ctx.Err() != nil || !reportBad || errors.Is(err, cqrsync.ErrSchema) {
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
			if cqrsync.IsRetryable(err) || ctx.Err() != nil || errors.Is(err, cqrsync.ErrSchema) {
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
		v, err := cqrsync.DecodeJSON(text)
		data, isObj := v.(cqrsync.Object)
		if err != nil || !isObj {
			if err == nil {
				err = errors.New("not a JSON object")
			}
			bad(lineNo, fmt.Errorf("%w: %v", cqrsync.ErrMalformedPayload, err))
			continue
		}
		pk, _ := data.Get(rmSourcePK(rm))
		batch = append(batch, entry{line: lineNo, p: &cqrsync.Payload{SignalType: cqrsync.SignalSave, CQRSID: res.CQRSID, InstanceData: data, InstancePK: pk, Expires: now.Add(time.Hour)}})
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
func rmSourcePK(rm *cqrsync.ReplicaModel) string {
	for from, to := range rm.Mapping {
		if to == rm.PK {
			return from
		}
	}
	return rm.PK
}

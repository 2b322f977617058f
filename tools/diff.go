package tools

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
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
	// Now is the clock that dates the stream's first line. Default
	// time.Now.
	Now func() time.Time
}

// header returns the first line of a stream that starts at opts.Now.
func (o *DiffOpts) header(cqrsID string) string {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	return cqrsID + "," + cqrsync.FormatDateTime(now().UTC())
}

// DiffMaster writes the master side of a diff: the header line, then per
// batch a JSON list of [pk, cqrs_revision] pairs. Rows refused by the
// model's IsSyncInstance are left out.
func DiffMaster(ctx context.Context, m Master, ex sqldialect.Executor, cqrsID string, w io.Writer, opts *DiffOpts) error {
	if opts == nil {
		opts = &DiffOpts{}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n", opts.header(cqrsID))
	mm, _ := m.Model(cqrsID) // Scan reports an unknown model
	err := m.Scan(ctx, ex, cqrsID, &cqrsync.ScanOpts{Filter: opts.Filter, BatchSize: cmp.Or(opts.BatchSize, 10000)}, func(page []cqrsync.MasterRow) error {
		pairs := make([]any, 0, len(page))
		for _, r := range page {
			if mm.IsSyncInstance != nil && !mm.IsSyncInstance(r.Columns) {
				continue
			}
			rev, _ := r.Columns.Get(cqrsync.RevisionField)
			pairs = append(pairs, []any{r.PK, rev})
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
	b, err := cqrsync.AppendJSON(nil, v)
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
		return "", "", "", fmt.Errorf("%w: first line %q is not \"<cqrs_id>,<datetime>\"", ErrBadDiffStream, errtext.Truncate(line, 80))
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
func DiffReplica(ctx context.Context, r *cqrsync.Replica, ex sqldialect.Executor, queue string, in io.Reader, w io.Writer) ([]any, error) {
	sc := newLineScanner(in)
	header, cqrsID, _, err := diffHeader(sc)
	if err != nil {
		return nil, err
	}
	if _, err := r.Revisions(ctx, ex, cqrsID, nil); err != nil {
		return nil, err // an unknown model or a missing table, before any output
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s,%s\n", header, queue)
	var all []any
	for lineNo := 2; sc.Scan(); lineNo++ {
		v, err := cqrsync.DecodeJSON(sc.Bytes())
		pairs, ok := v.([]any)
		if err != nil || !ok {
			return all, fmt.Errorf("%w: line %d is not a JSON list of [pk, revision] pairs", ErrBadDiffStream, lineNo)
		}
		keys := make([]any, len(pairs))
		want := make([]int64, len(pairs))
		for i, pair := range pairs {
			pr, ok := pair.([]any)
			if !ok || len(pr) != 2 {
				return all, fmt.Errorf("%w: line %d: %v is not a [pk, revision] pair", ErrBadDiffStream, lineNo, pair)
			}
			keys[i] = pr[0]
			rev, err := cqrsync.ColumnValue(cqrsync.TypeInt, pr[1])
			if err != nil {
				return all, fmt.Errorf("%w: line %d: revision %v: %v", ErrBadDiffStream, lineNo, pr[1], err)
			}
			want[i] = rev.(int64)
		}
		have, err := r.Revisions(ctx, ex, cqrsID, keys)
		if errors.Is(err, cqrsync.ErrInvalidValue) {
			return all, fmt.Errorf("%w: line %d: %v", ErrBadDiffStream, lineNo, err)
		}
		if err != nil {
			return all, err
		}
		var diff []any
		for i := range pairs {
			if have[i] != want[i] {
				diff = append(diff, keys[i])
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

// DiffSync reads DiffReplica's stream and sends a SYNC of each listed row to
// the queue named at the end of its first line ("None" broadcasts), through
// the outbox. It returns the rows synced and the keys processed.
func DiffSync(ctx context.Context, m Master, ex sqldialect.Executor, in io.Reader) (synced, processed int64, err error) {
	sc := newLineScanner(in)
	_, cqrsID, queue, err := diffHeader(sc)
	if err != nil {
		return 0, 0, err
	}
	if queue == "None" {
		queue = ""
	}
	mm, ok := m.Model(cqrsID)
	if !ok {
		// SyncQuery says what is wrong, as for any other sync.
		_, err := m.SyncQuery(ctx, ex, cqrsID, &cqrsync.SyncOpts{Filter: "{}"})
		return 0, 0, err
	}
	for lineNo := 2; sc.Scan(); lineNo++ {
		v, err := cqrsync.DecodeJSON(sc.Bytes())
		keys, ok := v.([]any)
		if err != nil || !ok {
			return synced, processed, fmt.Errorf("%w: line %d is not a JSON list of keys", ErrBadDiffStream, lineNo)
		}
		filter, err := cqrsync.AppendJSON(nil, cqrsync.Object{{Key: mm.PK + "__in", Value: keys}})
		if err != nil {
			return synced, processed, err
		}
		n, err := m.SyncQuery(ctx, ex, cqrsID, &cqrsync.SyncOpts{Filter: string(filter), Queue: queue})
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
func DeletedDiffReplica(ctx context.Context, r *cqrsync.Replica, ex sqldialect.Executor, cqrsID string, w io.Writer, opts *DiffOpts) error {
	if opts == nil {
		opts = &DiffOpts{}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n", opts.header(cqrsID))
	err := r.ScanKeys(ctx, ex, cqrsID, &cqrsync.ScanOpts{Filter: opts.Filter, BatchSize: opts.BatchSize}, func(keys []any) error {
		return writeJSONLine(bw, keys)
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// DeletedDiffMaster reads DeletedDiffReplica's stream and writes the keys
// that no longer exist on the master: the header, then per input line the
// list of such keys, when not empty. It returns every such key.
func DeletedDiffMaster(ctx context.Context, m Master, ex sqldialect.Executor, in io.Reader, w io.Writer) ([]any, error) {
	sc := newLineScanner(in)
	header, cqrsID, _, err := diffHeader(sc)
	if err != nil {
		return nil, err
	}
	if _, err := m.MissingKeys(ctx, ex, cqrsID, nil); err != nil {
		return nil, err // an unknown model or a missing table, before any output
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n", header)
	var all []any
	for lineNo := 2; sc.Scan(); lineNo++ {
		v, err := cqrsync.DecodeJSON(sc.Bytes())
		keys, ok := v.([]any)
		if err != nil || !ok {
			return all, fmt.Errorf("%w: line %d is not a JSON list of keys", ErrBadDiffStream, lineNo)
		}
		gone, err := m.MissingKeys(ctx, ex, cqrsID, keys)
		if errors.Is(err, cqrsync.ErrInvalidValue) {
			return all, fmt.Errorf("%w: line %d: %v", ErrBadDiffStream, lineNo, err)
		}
		if err != nil {
			return all, err
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

// DeletedSyncReplica reads DeletedDiffMaster's stream and deletes the
// listed rows from the replica. It returns how many it deleted.
func DeletedSyncReplica(ctx context.Context, r *cqrsync.Replica, ex sqldialect.Executor, in io.Reader) (int64, error) {
	sc := newLineScanner(in)
	_, cqrsID, _, err := diffHeader(sc)
	if err != nil {
		return 0, err
	}
	if _, err := r.DeleteKeys(ctx, ex, cqrsID, nil); err != nil {
		return 0, err // an unknown model or a missing table, before any line
	}
	var deleted int64
	for lineNo := 2; sc.Scan(); lineNo++ {
		v, err := cqrsync.DecodeJSON(sc.Bytes())
		keys, ok := v.([]any)
		if err != nil || !ok {
			return deleted, fmt.Errorf("%w: line %d is not a JSON list of keys", ErrBadDiffStream, lineNo)
		}
		n, err := r.DeleteKeys(ctx, ex, cqrsID, keys)
		deleted += n
		if errors.Is(err, cqrsync.ErrInvalidValue) {
			return deleted, fmt.Errorf("%w: line %d: %v", ErrBadDiffStream, lineNo, err)
		}
		if err != nil {
			return deleted, err
		}
	}
	return deleted, sc.Err()
}

package admin

// The calls to cqrsync's operator tools (sync, dump, dead letters) stand
// in this file alone, so that a move of those tools changes only it.

import (
	"bytes"
	"context"
	"errors"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport"
)

// syncRows enqueues SYNCs of the rows filter selects, to queue or to every
// replica queue, as `cqrsync sync` does, and returns how many.
func syncRows(ctx context.Context, m Master, ex sqldialect.Executor, cqrsID, filter, queue string) (int64, error) {
	return m.SyncQuery(ctx, ex, cqrsID, &cqrsync.SyncOpts{Filter: filter, Queue: queue})
}

// errPreviewFull stops a preview that has read enough rows.
var errPreviewFull = errors.New("admin: preview full")

// previewRows returns the first rows (as the JSON a SYNC would carry) of
// those filter selects, skipping the rows the model's sync check refuses,
// and how many rows it counted, up to countLimit; more is true when there
// are more than that.
func previewRows(ctx context.Context, m Master, ex sqldialect.Executor, cqrsID, filter string, show, countLimit int) (rows []string, count int, more bool, err error) {
	w := &lineWriter{show: show, limit: countLimit}
	_, _, err = tools.Dump(ctx, m, ex, cqrsID, w, &tools.DumpOpts{Filter: filter, SkipRefused: true, BatchSize: 500})
	w.flush()
	if errors.Is(err, errPreviewFull) {
		return w.rows, w.count, true, nil
	}
	return w.rows, w.count, false, err
}

// lineWriter collects a dump's lines: the first is the CQRS ID, the others
// rows.
type lineWriter struct {
	buf         []byte
	header      bool
	rows        []string
	count       int
	show, limit int
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
		if w.count > w.limit {
			w.count = w.limit
			return len(p), errPreviewFull
		}
	}
}

func (w *lineWriter) line(l []byte) {
	if !w.header {
		w.header = true
		return
	}
	w.count++
	if len(w.rows) < w.show {
		w.rows = append(w.rows, string(l))
	}
}

// flush takes the last line, which the dump does not end with a newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 && w.count < w.limit {
		w.line(w.buf)
		w.buf = nil
	}
}

// deadLetterFilter selects the dead letters of a model and a reason; ""
// selects any.
func deadLetterFilter(cqrsID, reason string, anyReason bool) *tools.DeadLetterFilter {
	f := &tools.DeadLetterFilter{}
	if cqrsID != "" {
		f.CQRSIDs = []string{cqrsID}
	}
	if !anyReason {
		f.Reasons = []string{reason}
	}
	return f
}

// retryDeadLetters sends the selected dead letters back to queue, as
// `cqrsync dead-letters retry` does.
func retryDeadLetters(ctx context.Context, dl transport.DeadLetters, pub transport.Publisher, queue, dlq string, f *tools.DeadLetterFilter) (int, error) {
	return tools.RetryDeadLetters(ctx, dl, pub, queue, dlq, &tools.RetryDeadLettersOpts{Filter: f})
}

// purgeDeadLetters removes the selected dead letters, as `cqrsync
// dead-letters purge` does.
func purgeDeadLetters(ctx context.Context, dl transport.DeadLetters, dlq string, f *tools.DeadLetterFilter) (int, error) {
	return tools.PurgeDeadLetters(ctx, dl, dlq, f)
}

// reasonOf returns why a dead letter was dead-lettered, "" when it does
// not say (django-cqrs's).
func reasonOf(m *transport.Message) string { return m.Headers[cqrsync.HeaderDeadLetterReason] }

// deadLetteredAt returns when a dead letter was dead-lettered, "" when it
// does not say.
func deadLetteredAt(m *transport.Message) string { return m.Headers[cqrsync.HeaderDeadLetteredAt] }

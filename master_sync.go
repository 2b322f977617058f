package cqrsync

import (
	"cmp"
	"context"
	"fmt"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// SyncOpts configures SyncQuery.
type SyncOpts struct {
	// Filter selects rows, in the language of ParseFilter (for example
	// {"id__in": [1, 2]}). Empty selects every row.
	Filter string
	// Queue sends the SYNCs to that replica queue only; empty broadcasts.
	Queue string
	// BatchSize is the number of rows read and enqueued at a time.
	// Default 1000.
	BatchSize int
	// Progress, when set, is called after each batch with the rows synced so
	// far and the total that matched the filter when the sync started.
	Progress func(done, total int64)
}

// SyncQuery sends a SYNC with the current state of every row that matches
// opts.Filter, to every replica queue or to one (django-cqrs's cqrs_sync).
// It walks the table in keyset pages ordered by primary key (never OFFSET),
// and puts each page into the outbox with one statement, so it is safe on a
// live table and on millions of rows and never holds a long transaction: a
// row changed meanwhile gets its own SAVE, which replicas order by revision.
// ex is the master database (a pool); each page commits on its own. It
// returns the number of SYNC events enqueued.
func (m *Master[TTx]) SyncQuery(ctx context.Context, ex sqldialect.Executor, cqrsID string, opts *SyncOpts) (int64, error) {
	if opts == nil {
		opts = &SyncOpts{}
	}
	if _, err := m.model(cqrsID); err != nil {
		return 0, err
	}
	if opts.Queue != "" && !validName(opts.Queue) {
		return 0, fmt.Errorf("cqrsync: sync %s: queue name %q has '.', '*', '#' or spaces", cqrsID, opts.Queue)
	}
	var done int64
	err := m.walk(ctx, ex, cqrsID, opts.Filter, cmp.Or(opts.BatchSize, 1000), opts.Progress, func(mm *MasterModel, page []masterRow) error {
		if err := m.publishRows(ctx, ex, mm, SignalSync, page, opts.Queue, nil); err != nil {
			return err
		}
		done += int64(len(page))
		return nil
	})
	return done, err
}

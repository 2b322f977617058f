package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/tools"
)

// waitFlags are the flags of the commands that enqueue events and then send
// them: --no-wait and --timeout.
type waitFlags struct {
	noWait  bool
	timeout time.Duration
}

func (w *waitFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&w.noWait, "no-wait", false, "leave the events in the outbox for the service's relay instead of sending them before exiting")
	f.DurationVar(&w.timeout, "timeout", 10*time.Minute, "how long to try sending the events before giving up (they stay in the outbox)")
}

func (w *waitFlags) check() error {
	if w.timeout <= 0 {
		return UsageError{Err: errtext.Errorf("--timeout must be positive, got %v", w.timeout)}
	}
	return nil
}

func newSyncCommand(st *state) *cobra.Command {
	var (
		cqrsID, filter, queue string
		batch                 int
		dryRun                bool
		wait                  waitFlags
		prog                  progressFlag
	)
	cmd := &cobra.Command{
		Use:   "sync --cqrs-id ID [-f FILTER] [-q QUEUE]",
		Short: "Send a SYNC of a master model's rows to the replicas",
		Long: `sync sends the current state of every row a filter selects, as SYNC events,
to every replica queue or to one (django-cqrs's cqrs_sync). A SYNC sent to
every queue never downgrades a replica's row: it applies when its revision is
not lower than the stored one. With --queue it is a repair: that replica
overwrites its row whatever the revision, as django-cqrs does; run it on a
quiet table, or diff again afterwards, since it undoes a change made after
sync read the row.

The events go through the outbox, in keyset pages, so sync is safe on a live
table of any size. Then, so that the command is useful on its own, sync sends
them through a relay of its own and exits when every event it enqueued has
been published (--timeout bounds that). With --no-wait it exits at once and
leaves them to the service's relay (cqrsync relay). --dry-run counts the rows
and sends nothing.

The filter is Django-lookup-like JSON: {"id__in": [1, 2]},
{"name__startswith": "a", "created__gte": "2024-01-01"}; lookups are exact,
iexact, in, gt, gte, lt, lte, isnull, startswith, istartswith, endswith,
iendswith, contains and icontains; an empty "in" list selects nothing.

Without --filter, every row is synced, as with -f '{}'. This differs from
django-cqrs's cqrs_sync, which sends nothing without --filter ("No objects
found for filter!"): a script written for it that omits the filter to do
nothing must not be run against cqrsync unchanged. Rows the model's sync
check (is_sync_instance) refuses are not sent. The summary ("Done!", rows
synced and processed) goes to stdout, as django-cqrs prints it.`,
		Example: `  cqrsync sync --cqrs-id account
  cqrsync sync -c account -f '{"id__in": [1, 2, 3]}' -q billing_replica
  cqrsync sync -c account -f '{"updated__gte": "2024-06-01"}' --dry-run
  cqrsync sync -c account --no-wait --progress      # a running relay sends them`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cqrsID == "" {
				return UsageError{Err: errors.New("--cqrs-id is required")}
			}
			if err := errors.Join(checkBatch(batch), checkFilter(filter), checkQueue("--queue", queue), wait.check()); err != nil {
				return err
			}
			needs := Needs{DB: true, Master: true, Transport: !dryRun && !wait.noWait}
			check := func(app *App) error { return checkModel("master", cqrsID, app.Master.Models()) }
			return st.run(cmd, needs, check, func(s *session) error {
				target := "every replica queue"
				if queue != "" {
					target = "queue " + queue
				}
				if dryRun {
					written, processed, err := tools.Dump(s.ctx, s.app.Master, s.ex(), cqrsID, io.Discard, &tools.DumpOpts{Filter: filter, BatchSize: batch, SkipRefused: true})
					if err != nil {
						return err
					}
					fmt.Fprintf(s.env.Out, "Dry run: would sync %d instance(s) of %s to %s; %d instance(s) processed. Nothing was sent.\n", written, cqrsID, target, processed)
					return nil
				}
				// Check the outbox and the model's table before enqueuing anything.
				if err := s.app.Master.Check(s.ctx, s.ex(), cqrsID); err != nil {
					return err
				}
				// Connect first: if the broker is down, enqueue nothing.
				var tr *Transport
				if needs.Transport {
					var err error
					if tr, err = s.transport(); err != nil {
						return err
					}
				}
				p := prog.reporter(cmd, s, "sync "+cqrsID, "rows")
				n, err := s.app.Master.SyncQuery(s.ctx, s.ex(), cqrsID, &cqrsync.SyncOpts{Filter: filter, Queue: queue, BatchSize: batch, Progress: p.update})
				if err != nil {
					if n > 0 {
						return errtext.Errorf("%w (the SYNCs of the first %d rows are in the outbox and will be sent)", err, n)
					}
					return err
				}
				p.finish(n, n)
				if tr != nil {
					if _, err := drain(s, tr, time.Now(), wait.timeout); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(s.env.Err, "%d SYNC event(s) are in the outbox: the service's relay sends them (cqrsync relay).\n", n)
				}
				fmt.Fprintf(s.env.Out, "Done!\n%d instance(s) synced.\n%d instance(s) processed.\n", n, n)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cqrsID, "cqrs-id", "c", "", "CQRS ID of the master model (required)")
	f.StringVarP(&filter, "filter", "f", "", `rows to sync, e.g. '{"id__in": [1, 2]}' (default: every row; django-cqrs: none)`)
	f.StringVarP(&queue, "queue", "q", "", "send to this replica queue only (default: every replica queue)")
	f.IntVarP(&batch, "batch", "b", 1000, "rows read and enqueued per transaction")
	f.BoolVar(&dryRun, "dry-run", false, "count the rows that would be synced; send nothing")
	wait.add(cmd)
	prog.add(cmd)
	return cmd
}

// drain sends the outbox through a relay of this process until no event
// captured up to since is waiting (events captured later, by the service,
// are left to its own relay). It returns how many events it published.
func drain(s *session, tr *Transport, since time.Time, timeout time.Duration) (int64, error) {
	if s.app.WAL != nil {
		// The events are in the write-ahead log, which only the slot's
		// relay reads (one relay per slot): the service's relay sends them.
		fmt.Fprintf(s.env.Err, "cqrsync: the events are in the write-ahead log (outbox: wal): the service's WAL relay sends them (cqrsync relay)\n")
		return 0, nil
	}
	cfg := s.app.Relay
	cfg.Publisher, cfg.Logger = tr.Publisher, s.log
	relay, err := outbox.NewRelay(s.db(), &cfg)
	if err != nil {
		return 0, err
	}
	cfg = cfg.WithDefaults()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	left := func(cause error) error {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
		defer scancel()
		if st, err := s.app.Dialect.OutboxStats(sctx, s.ex()); err == nil {
			return errtext.Errorf("sending the events: %w; %d event(s) are still in the outbox, a relay will send them (cqrsync relay)", cause, st.Rows)
		}
		return errtext.Errorf("sending the events: %w; they are still in the outbox, a relay will send them (cqrsync relay)", cause)
	}
	var backoff time.Duration
	fail := func(err error) error {
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		s.log.Warn("cqrsync: sending the outbox failed, retrying", slog.Any("error", err), slog.Duration("retry_in", backoff))
		if !sleepCtx(ctx, backoff) {
			return left(errtext.Errorf("%w (last error: %v)", context.Cause(ctx), err))
		}
		return nil
	}
	for {
		n, err := relay.RunOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return relay.Published(), left(context.Cause(ctx))
			}
			if err := fail(err); err != nil {
				return relay.Published(), err
			}
			continue
		}
		backoff = 0
		if n == cfg.BatchSize {
			continue // more waiting
		}
		stats, err := s.app.Dialect.OutboxStats(ctx, s.ex())
		if err != nil {
			if ctx.Err() != nil {
				return relay.Published(), left(context.Cause(ctx))
			}
			if err := fail(err); err != nil {
				return relay.Published(), err
			}
			continue
		}
		if stats.Rows == 0 || stats.Oldest.After(since) {
			return relay.Published(), nil
		}
		if n == 0 {
			// What is left is leased by another relay: give it time.
			if !sleepCtx(ctx, cfg.PollInterval) {
				return relay.Published(), left(context.Cause(ctx))
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

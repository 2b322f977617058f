package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/promhook"
	"github.com/cqrsync/cqrsync/internal/errtext"
)

func newConsumeCommand(st *state) *cobra.Command {
	var (
		workers, batch int
		batchWait      time.Duration
		cqrsIDs        []string
		listen         string
	)
	cmd := &cobra.Command{
		Use:   "consume [-w N] [--cqrs-id ID]...",
		Short: "Apply the replica queue's events to the replica tables until stopped",
		Long: `consume runs the replica's consumer (django-cqrs's cqrs_consume): it
subscribes to the replica queue, binds it to the replica models' CQRS IDs,
and applies each event with the revision and tombstone rules, in batches, with
retries and dead letters. It runs until SIGTERM or SIGINT (Ctrl-C), then stops
taking events, finishes the batches in hand and exits 0.

Before it subscribes it checks the database: migrate must have created
cqrs_tombstones, and each replica model's table must exist with its primary
key, cqrs_revision, cqrs_updated and the columns its mapping writes;
otherwise it exits 2 naming what is missing and the SQL or command that adds
it. A database or broker that cannot be reached at start exits 1: start
consume after them, or let the service manager restart it.

Events of one row always go to the same worker, in order. --cqrs-id limits
the consumer to some models (repeat the flag, or separate with commas). It
prints one line on stderr once it is subscribed, and its counts when it stops.

--listen serves Prometheus metrics on /metrics (events applied, dropped,
retried and dead-lettered by model, batch sizes and durations, end-to-end
lag, the queue's and dead-letter queue's depth read at each scrape),
/healthz (200 while the process runs) and /readyz (200 once the consumer is
subscribed and the database and broker answer, 503 otherwise); see
docs/observability.md.`,
		Example: `  cqrsync consume
  cqrsync consume -w 4 --cqrs-id account --cqrs-id invoice
  cqrsync consume -w 8 --batch 500 --log-level info
  cqrsync consume --listen :9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batchWait < 0 {
				return UsageError{Err: errtext.Errorf("--batch-wait must not be negative, got %v", batchWait)}
			}
			if cmd.Flags().Changed("workers") && workers < 1 {
				return UsageError{Err: errtext.Errorf("--workers must be at least 1, got %d", workers)}
			}
			if cmd.Flags().Changed("batch") {
				if err := checkBatch(batch); err != nil {
					return err
				}
			}
			check := func(app *App) error {
				var errs []error
				for _, id := range cqrsIDs {
					errs = append(errs, checkModel("replica", id, app.Replica.Models()))
				}
				if err := errors.Join(errs...); err != nil {
					return UsageError{Err: err}
				}
				return nil
			}
			return st.run(cmd, Needs{DB: true, Replica: true, Transport: true, Queue: true}, check, func(s *session) error {
				ids := cqrsIDs
				if len(ids) == 0 {
					ids = s.app.Replica.Models()
				}
				if err := s.app.Replica.Check(s.ctx, s.ex(), ids...); err != nil {
					return err
				}
				tr, err := s.transport()
				if err != nil {
					return err
				}
				cfg := s.app.Consumer
				cfg.Replica, cfg.Subscriber, cfg.Publisher = s.app.Replica, tr.Subscriber, tr.Publisher
				var ends *endpoints
				if listen != "" {
					var metrics hook.Hooks
					ends, metrics, err = s.listen(listen, tr, promhook.Config{Queues: []string{s.app.Queue, s.dlq()}})
					if err != nil {
						return err
					}
					defer ends.close()
					cfg.Hooks = hook.Join(cfg.Hooks, metrics)
				}
				cfg.Queue, cfg.Logger = s.app.Queue, s.log
				if s.app.DeadLetterQueue != "" {
					cfg.DeadLetterQueue = s.app.DeadLetterQueue
				}
				if cmd.Flags().Changed("workers") {
					cfg.Workers = workers
				}
				if cmd.Flags().Changed("batch") {
					cfg.BatchSize = batch
				}
				if cmd.Flags().Changed("batch-wait") {
					cfg.BatchWait = batchWait
				}
				if len(cqrsIDs) > 0 {
					cfg.CQRSIDs = cqrsIDs
				}
				consumer, err := cqrsync.NewConsumer(&cfg)
				if err != nil {
					return UsageError{Err: err}
				}
				full := cfg.WithDefaults()
				if s.app.SizePool != nil {
					s.app.SizePool(full.Workers + 1)
				}
				if err := consumer.Start(s.ctx); err != nil {
					return err
				}
				select {
				case <-consumer.Started():
					ends.setRunning()
				case <-s.ctx.Done():
				}
				if s.ctx.Err() == nil {
					fmt.Fprintf(s.env.Err, "cqrsync: consuming queue %s (%s) with %d worker(s); stop with SIGTERM or Ctrl-C\n",
						full.Queue, strings.Join(full.CQRSIDs, ", "), full.Workers)
				}
				select {
				case <-s.ctx.Done():
				case <-consumer.Done():
				}
				err = consumer.Stop()
				stats := consumer.Stats()
				fmt.Fprintf(s.env.Err, "cqrsync: consumer stopped: %d received, %d applied, %d dropped (duplicate or stale), %d retried, %d dead-lettered\n",
					stats.Received, stats.Applied, stats.Dropped, stats.Retried, stats.DeadLettered)
				if err != nil {
					return err
				}
				if s.ctx.Err() == nil {
					return errors.New("the consumer stopped by itself")
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.IntVarP(&workers, "workers", "w", 1, "events applied in parallel (default: the configuration's, else 1)")
	f.IntVarP(&batch, "batch", "b", 100, "most events applied per transaction (default: the configuration's, else 100)")
	f.DurationVar(&batchWait, "batch-wait", 0, "how long a worker waits to fill its batch before applying it (e.g. 2ms; default: the configuration's, else 0: at once)")
	f.StringSliceVarP(&cqrsIDs, "cqrs-id", "c", nil, "consume only these models (default: every replica model)")
	listenFlag(f, &listen)
	return cmd
}

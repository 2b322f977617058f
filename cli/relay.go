package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/promhook"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/outbox/pglisten"
)

func newRelayCommand(st *state) *cobra.Command {
	var (
		batch  int
		poll   time.Duration
		listen string
	)
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Send the master's outbox to the broker until stopped",
		Long: `relay runs the outbox relay alone: it claims committed events from the
master database's outbox, publishes them, and deletes them once the broker
confirmed them. Several relays may run at once. On PostgreSQL it LISTENs for
the outbox's notifications, so it wakes as soon as a transaction commits
events; it also polls, as a fallback and on other databases.

With master.outbox: wal (PostgreSQL), it streams the events from the
logical replication slot master.wal_slot instead (created when missing) and
confirms each position to the slot once the broker confirmed the events
before it; one relay streams a slot at a time, a second one waits. While no
relay runs, PostgreSQL keeps the WAL for the slot: see cqrsync outbox status.
It still relays the outbox table beside the slot, polling: capture triggers
(cqrsync capture install) write there, and so did captures before the switch.

Rows that capture triggers wrote are rendered into events with the master
models of the configuration.

At start it checks that migrate created cqrs_outbox (exit 2 otherwise). A
database or broker that cannot be reached at start exits 1: start the relay
after them, or let the service manager restart it; once running, it waits
out broker and database outages by itself. Only one master may publish a
given cqrs_id: two masters with the same cqrs_id keep separate revision
counters, and replicas drop the events of whichever is behind.

--listen serves Prometheus metrics on /metrics (the outbox backlog read at
each scrape, publish counts, confirm latency, failures), /healthz (200 while
the process runs) and /readyz (200 once the relay runs and the database and
broker answer, 503 otherwise); see docs/observability.md.

It runs until SIGTERM or SIGINT (Ctrl-C) and exits 0; a batch being published
then stays in the outbox for the next relay. It prints one line on stderr once
it runs, and the count of events it published when it stops.`,
		Example: `  cqrsync relay
  cqrsync relay --batch 1000 --poll-interval 1s --log-level info
  cqrsync relay --listen :9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("batch") {
				if err := checkBatch(batch); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("poll-interval") && poll <= 0 {
				return UsageError{Err: errtext.Errorf("--poll-interval must be positive, got %v", poll)}
			}
			return st.run(cmd, Needs{DB: true, Transport: true}, nil, func(s *session) error {
				if err := cqrsync.CheckOutbox(s.ctx, s.db()); err != nil {
					return err
				}
				tr, err := s.transport()
				if err != nil {
					return err
				}
				cfg := s.app.Relay
				cfg.Publisher, cfg.Logger = tr.Publisher, s.log
				s.renderer(&cfg)
				var ends *endpoints
				if listen != "" {
					var metrics hook.Hooks
					ends, metrics, err = s.listen(listen, tr, promhook.Config{Outbox: outbox.StatsFunc(s.db())})
					if err != nil {
						return err
					}
					defer ends.close()
					cfg.Hooks = hook.Join(cfg.Hooks, metrics)
				}
				if cmd.Flags().Changed("batch") {
					cfg.BatchSize = batch
				}
				if cmd.Flags().Changed("poll-interval") {
					cfg.PollInterval = poll
				}
				if s.app.WAL != nil {
					return runWALRelay(s, tr, cfg)
				}
				relay, err := outbox.NewRelay(s.db(), &cfg)
				if err != nil {
					return UsageError{Err: err}
				}
				full := cfg.WithDefaults()
				wake := fmt.Sprintf("polling every %v", full.PollInterval)
				var listening chan struct{}
				var wg sync.WaitGroup
				if s.app.ListenConnString != "" {
					listening = make(chan struct{})
					var once sync.Once
					wg.Go(func() {
						err := pglisten.Run(s.ctx, &pglisten.Config{
							ConnString: s.app.ListenConnString, OnNotify: relay.Wake, Logger: s.log, // NOTIFY comes at commit
							OnListening: func() { once.Do(func() { close(listening) }) },
						})
						if err != nil {
							s.log.Error("cqrsync: cannot listen for outbox notifications; polling only", slog.Any("error", err))
							once.Do(func() { close(listening) })
						}
					})
					wake = fmt.Sprintf("woken by PostgreSQL notifications, polling every %v", full.PollInterval)
				}
				if err := relay.Start(s.ctx); err != nil {
					return err
				}
				ends.setRunning()
				if listening != nil {
					t := time.NewTimer(connectTimeout)
					select {
					case <-listening:
					case <-t.C:
						wake = fmt.Sprintf("not yet listening for PostgreSQL notifications, polling every %v", full.PollInterval)
					case <-s.ctx.Done():
					}
					t.Stop()
				}
				if s.ctx.Err() == nil {
					fmt.Fprintf(s.env.Err, "cqrsync: relaying the outbox to the broker (%s); stop with SIGTERM or Ctrl-C\n", wake)
				}
				<-s.ctx.Done()
				err = relay.Stop()
				wg.Wait()
				fmt.Fprintf(s.env.Err, "cqrsync: relay stopped: %d event(s) published\n", relay.Published())
				return err
			})
		},
	}
	f := cmd.Flags()
	f.IntVarP(&batch, "batch", "b", 500, "most events claimed and published at once (default: the configuration's, else 500)")
	listenFlag(f, &listen)
	f.DurationVar(&poll, "poll-interval", 200*time.Millisecond, "how often to look for events when nothing wakes the relay (default: the configuration's, else 200ms)")
	return cmd
}

func newOutboxCommand(st *state) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "outbox status",
		Short:   "Report the master's outbox backlog",
		Example: "  cqrsync outbox status --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return UsageError{Err: errtext.Errorf("name a subcommand: status")}
		},
	}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Print how many events wait in the outbox, and the age of the oldest",
		Long: `status prints the outbox backlog on stdout: the number of events waiting
for a relay and how long ago the oldest was captured. A growing backlog or an
old oldest event means no relay runs, or the broker refuses the events.
--json prints {"rows": N, "oldest": "RFC 3339 time" or null, "oldest_age_seconds": S}.

With master.outbox: wal it reports the replication slot instead: whether a
relay streams it, its lag in bytes, the WAL PostgreSQL keeps for it, and the
age of the oldest waiting event; it warns when no relay runs (PostgreSQL then
keeps WAL until the disk is full). --json prints {"slot", "exists", "active",
"lag_bytes", "retained_bytes", "wal_status", "oldest", "oldest_age_seconds"}.`,
		Example: `  cqrsync outbox status
  cqrsync outbox status --json | jq .oldest_age_seconds`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return st.run(cmd, Needs{DB: true}, nil, func(s *session) error {
				if s.app.WAL != nil {
					return walStatus(s, asJSON)
				}
				stats, err := s.app.Dialect.OutboxStats(s.ctx, s.ex())
				if err != nil {
					return err
				}
				var age time.Duration
				if stats.Rows > 0 && !stats.Oldest.IsZero() {
					age = max(time.Since(stats.Oldest), 0)
				}
				if asJSON {
					out := struct {
						Rows       int64      `json:"rows"`
						Oldest     *time.Time `json:"oldest"`
						OldestAgeS float64    `json:"oldest_age_seconds"`
					}{Rows: stats.Rows, OldestAgeS: age.Seconds()}
					if stats.Rows > 0 {
						t := stats.Oldest.UTC()
						out.Oldest = &t
					}
					b, err := json.Marshal(out)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(s.env.Out, "%s\n", b)
					return err
				}
				if stats.Rows == 0 {
					_, err = fmt.Fprintln(s.env.Out, "outbox: empty")
					return err
				}
				_, err = fmt.Fprintf(s.env.Out, "outbox: %d event(s) waiting, the oldest captured %s ago (%s)\n",
					stats.Rows, roundDuration(age), stats.Oldest.UTC().Format(time.RFC3339))
				return err
			})
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(status, newDropSlotCommand(st))
	return cmd
}

func newMigrateCommand(st *state) *cobra.Command {
	var printSQL bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create cqrsync's tables (outbox, tombstones) in the database",
		Long: `migrate creates cqrsync's own tables, cqrs_outbox and cqrs_tombstones (and,
on PostgreSQL, the trigger that wakes relays; on MySQL, cqrs_capture_marks,
which capture triggers read), if they do not exist. It is
safe to run any number of times. --print writes the SQL to stdout instead,
for those who apply schema changes with their own tools. The models' tables
are yours to create; they need the columns cqrs_revision and cqrs_updated.`,
		Example: `  cqrsync migrate
  cqrsync migrate --print > cqrsync.sql`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printSQL {
				return st.run(cmd, Needs{}, func(app *App) error {
					if app.Dialect == nil {
						return UsageError{Err: errtext.Errorf("migrate --print needs the database's dialect, and the setup has none")}
					}
					return nil
				}, func(s *session) error {
					_, err := fmt.Fprint(s.env.Out, s.app.Dialect.MigrationSQL())
					return err
				})
			}
			return st.run(cmd, Needs{DB: true}, nil, func(s *session) error {
				if err := s.app.Dialect.Migrate(s.ctx, s.ex()); err != nil {
					return err
				}
				fmt.Fprintf(s.env.Err, "cqrsync: %s database migrated\n", s.app.Dialect.Name())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&printSQL, "print", false, "print the SQL instead of running it")
	return cmd
}

package main

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/internal/broker"
	"github.com/cqrsync/cqrsync/internal/demo"
	"github.com/cqrsync/cqrsync/internal/errtext"
)

// newDemoCommand returns the demo command: a master and a replica on
// embedded SQLite and the in-memory broker, or a real one (--transport).
func newDemoCommand() *cobra.Command {
	var opts demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a master and a replica on embedded SQLite and an in-memory or real broker",
		Long: `demo starts a master and a replica service, each with its own SQLite
database, joined by the in-memory transport. Several goroutines create,
update and delete rows on the master; the outbox relay publishes every
committed change and the consumer applies it to the replica. When the
replica has caught up, demo compares the two tables row by row.

--transport runs the same on a real broker instead; its URL's scheme picks
the broker: ` + strings.Join(broker.Schemes(), ", ") + ` (kafka://kfake starts
franz-go's in-process Kafka cluster). The run declares an exchange (stream,
topics) and a queue of its own, named cqrsdemo_<random>, and deletes them at
the end, also when it fails or is interrupted (Ctrl-C).

It needs no configuration, and exits 0 only if the replica equals the master.`,
		Example: `  cqrsync demo
  cqrsync demo --changes 20000 --writers 8 --workers 4
  cqrsync demo --dir ./demo-data --seed 42   # keep the databases, replay a run
  cqrsync demo --transport amqp://guest:guest@127.0.0.1:5672/
  cqrsync demo --transport nats://127.0.0.1:4222
  cqrsync demo --transport kafka://kfake`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Changes < 1 || opts.Writers < 1 || opts.Workers < 1 {
				return cli.UsageError{Err: errors.New("--changes, --writers and --workers must be at least 1")}
			}
			if err := opts.Validate(); err != nil {
				return cli.UsageError{Err: err}
			}
			opts.Logger = cli.Logger(cmd)
			res, err := demo.Run(cmd.Context(), opts, cmd.OutOrStdout())
			if errors.Is(err, demo.ErrDiverged) {
				return errtext.Errorf("%w (seed %d)", err, res.Seed)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Changes, "changes", 3000, "number of master changes to make")
	f.IntVar(&opts.Writers, "writers", 4, "goroutines writing on the master")
	f.IntVar(&opts.Workers, "workers", 4, "consumer workers on the replica (-w of django-cqrs's cqrs_consume)")
	f.StringVar(&opts.Dir, "dir", "", "directory for the two SQLite databases (default: a temporary one, removed afterwards)")
	f.Uint64Var(&opts.Seed, "seed", 0, "seed of the random workload (default: random; printed)")
	f.StringVar(&opts.Transport, "transport", "", "broker URL: "+strings.Join(broker.Schemes(), ", ")+" (default: the in-memory broker)")
	f.DurationVar(&opts.Timeout, "timeout", 60*time.Second, "how long to wait for the replica to catch up")
	return cmd
}

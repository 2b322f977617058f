package main

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/internal/bench"
	"github.com/cqrsync/cqrsync/internal/broker"
)

// newBenchCommand returns the bench command: a full pipeline on real
// servers, measured next to their raw limits.
func newBenchCommand() *cobra.Command {
	var (
		opts   bench.Options
		mix    string
		rates  []float64
		short  bool
		asJSON bool
		quiet  bool
		trHelp = "broker URL; its scheme picks the broker (" + strings.Join(broker.Schemes(), ", ") + "; default $CQRSYNC_AMQP_URL, else " + bench.DefaultAMQPURL + ")"
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a full pipeline on real servers next to their raw limits",
		Long: `bench runs a complete cqrsync pipeline in one process — master database →
outbox → relay → broker → consumer → replica database — and measures it
next to the raw limits of the same servers, taken in the same run just before:
plain one-row INSERT+COMMIT on the master, the broker's confirmed publish and
consume rates (its own client, raw), and plain batched upserts on the
replica. The broker is RabbitMQ unless --transport names another.

Phases (one or several per run):
  throughput  --changes N: N changes as fast as --writers connections go;
              master commit rate, end-to-end rate, latency under load
  drain       --drain N: N changes written (--fill-tx-rows per transaction)
              with the relay and the consumer stopped, then the relay
              started (outbox → broker rate), then the consumer (drain
              rate, memory during the drain)
  steady      --rate R[,R...] --duration D: changes paced at R per second;
              commit → visible latency p50/p95/p99/max
Without --drain or --rate, bench runs the throughput phase.

Latency runs from the master's commit to the row being visible on the
replica: every created or updated row carries its commit timestamp and a
probe value, and the replica's database connections stamp each probe they
write with the moment its apply transaction's commit returned (see
BENCHMARKS.md).

Databases are URLs (postgres://…, mysql://user:pass@host:port/db,
sqlite:path) or a kind — postgres, mysql, mariadb, sqlite — taking the URL
from $CQRSYNC_POSTGRES_URL or $CQRSYNC_MYSQL_URL (or the local defaults).
Each run creates its own schema, database or SQLite file, exchange and
queues, and removes them at the end.

It exits 1 if the replica does not equal the master at the end. Goals that
are missed are reported, not turned into a failure.`,
		Example: `  cqrsync bench                                  # PostgreSQL → RabbitMQ → PostgreSQL, 20,000 changes
  cqrsync bench --drain 100000                   # backlog drain
  cqrsync bench --rate 500,1000,2000 --duration 10s
  cqrsync bench --master-db mariadb --replica-db sqlite --changes 5000
  cqrsync bench --hooks-rounds 3 --changes 5000  # cost of the metrics and tracing hooks
  cqrsync bench --short --json                   # a few seconds, for CI
  cqrsync bench --cpuprofile cpu.out && go tool pprof -top cpu.out`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if !f.Changed("changes") && (f.Changed("drain") || f.Changed("rate")) {
				opts.Changes = 0
			}
			opts.Rates = rates
			if short {
				// --short sizes whatever was not given explicitly.
				for name, zero := range map[string]func(){
					"changes": func() { opts.Changes = 0 }, "duration": func() { opts.Duration = 0 },
					"warmup": func() { opts.Warmup = 0 }, "raw-duration": func() { opts.RawDuration = 0 },
					"timeout": func() { opts.Timeout = 0 },
				} {
					if !f.Changed(name) {
						zero()
					}
				}
				opts = bench.ShortOptions(opts)
			}
			m, err := bench.ParseMix(mix)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			opts.Mix = m
			opts.Logger = cli.Logger(cmd)
			if !quiet {
				opts.Progress = cmd.ErrOrStderr()
			}
			checked := opts.WithDefaults()
			if err := checked.Validate(); err != nil {
				return cli.UsageError{Err: err}
			}
			rep, err := bench.Run(cmd.Context(), opts)
			if rep != nil && (err == nil || errors.Is(err, bench.ErrDiverged)) {
				var werr error
				if asJSON {
					werr = rep.WriteJSON(cmd.OutOrStdout())
				} else {
					werr = rep.WriteTable(cmd.OutOrStdout())
				}
				if werr != nil && err == nil {
					err = werr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.MasterDB, "master-db", bench.Postgres, "master database: URL or postgres, mysql, mariadb, sqlite")
	f.StringVar(&opts.ReplicaDB, "replica-db", bench.Postgres, "replica database: URL or postgres, mysql, mariadb, sqlite")
	f.StringVar(&opts.Transport, "transport", "", trHelp)
	f.StringVar(&opts.Transport, "amqp", "", "RabbitMQ URL (the same as --transport)")
	_ = f.MarkDeprecated("amqp", "use --transport")
	f.IntVar(&opts.Changes, "changes", 20_000, "changes in the throughput phase")
	f.IntVar(&opts.Drain, "drain", 0, "changes queued in the drain phase (0: no drain phase)")
	f.Float64SliceVar(&rates, "rate", nil, "steady phases' rates, changes per second (e.g. 500,1000,2000)")
	f.DurationVar(&opts.Duration, "duration", 10*time.Second, "length of each steady phase")
	f.DurationVar(&opts.Warmup, "warmup", time.Second, "start of each steady phase left out of its latency figures")
	f.StringVar(&mix, "mix", "60:30:10", "percentages of creates, updates and deletes")
	f.IntVar(&opts.RowBytes, "row-bytes", 256, "bytes of payload per row")
	f.IntVar(&opts.Writers, "writers", 8, "concurrent master connections writing")
	f.IntVar(&opts.TxRows, "tx-rows", 1, "changes per master transaction")
	f.BoolVar(&opts.Insert, "insert", false, "create rows with Master.Insert and update them with Master.UpdateRow (the change and its capture in one statement) instead of INSERT + Master.Create and UPDATE + Master.Update")
	f.IntVar(&opts.FillTxRows, "fill-tx-rows", 100, "changes per master transaction while the drain phase fills the outbox")
	f.IntVar(&opts.Workers, "workers", 4, "consumer workers")
	f.IntVar(&opts.BatchSize, "batch", 100, "consumer batch size (events per replica transaction)")
	f.DurationVar(&opts.BatchWait, "batch-wait", 0, "how long a consumer worker waits to fill its batch (0: apply at once)")
	f.IntVar(&opts.Prefetch, "prefetch", 0, "consumer prefetch (default max(1001, 2 × workers × batch))")
	f.IntVar(&opts.RelayBatch, "relay-batch", 500, "relay batch size")
	f.StringVar(&opts.Outbox, "outbox", "table", "the master's outbox: table (cqrs_outbox) or wal (PostgreSQL's write-ahead log, relayed from a replication slot; docs/wal.md)")
	f.BoolVar(&opts.Hooks, "hooks", false, "run with the Prometheus and OpenTelemetry hooks on (metrics gathered every second, a span per capture, publish and apply)")
	f.IntVar(&opts.HooksRounds, "hooks-rounds", 0, "measure the hooks' cost: N throughput rounds with the hooks off and N on, alternating, each of --changes changes (0: off)")
	f.Float64Var(&opts.HooksSample, "hooks-sample", 1, "share of events the hooks trace (parent-based head sampling; 1: every event)")
	f.BoolVar(&opts.SkipRaw, "skip-raw", false, "do not measure the raw limits")
	f.DurationVar(&opts.RawDuration, "raw-duration", 3*time.Second, "length of each raw database measurement")
	f.IntVar(&opts.RawMessages, "raw-messages", 0, "messages of the raw broker measurements (default: the largest phase, 10,000 to 100,000)")
	f.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long a phase may wait for the replica to catch up")
	f.Uint64Var(&opts.Seed, "seed", 0, "seed of the random workload (default: random; printed)")
	f.StringVar(&opts.CPUProfile, "cpuprofile", "", "write a CPU profile of the pipeline phases to this file")
	f.BoolVar(&short, "short", false, "a tiny run of every phase, a few seconds (for CI)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines on stderr")
	return cmd
}

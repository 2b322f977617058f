package config

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/internal/errtext"
)

// CLIOpts configures [CLI].
type CLIOpts struct {
	// Masters are master models registered in Go, next to those the file
	// declares (a CQRS ID may not be in both).
	Masters []*cqrsync.MasterModel
	// Replicas are replica models registered in Go (custom handlers,
	// no-DB-operations models...), next to those the file declares.
	Replicas []*cqrsync.ReplicaModel
	// OpenTransport connects to the broker; nil connects to transport.url
	// with its registered kind (RabbitMQ's is built in, see
	// [RegisterTransport]). Set it for the in-memory transport in tests.
	OpenTransport func(ctx context.Context, c *Config, logger *slog.Logger) (*cli.Transport, error)
	// Getenv reads the environment (CQRSYNC_CONFIG and the overrides).
	// Default os.Getenv.
	Getenv func(string) string
}

// CLI returns the options of a command tree (package cli) configured by a
// file, as the cqrsync binary runs it: a --config flag (default
// $CQRSYNC_CONFIG, else cqrsync.yaml) and a setup that builds each
// command's App from the file, the environment and opts' Go models. Import
// the driver packages of the database URLs the program must open. Pass the
// result to cli.Main, cli.Run or cli.NewRootCommand; add commands of your
// own with its Commands.
func CLI(opts *CLIOpts) *cli.Options {
	o := CLIOpts{}
	if opts != nil {
		o = *opts
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	return &cli.Options{
		Flags: func(fs *pflag.FlagSet) {
			fs.String("config", cmp.Or(o.Getenv(EnvConfig), DefaultFile), "configuration file (env "+EnvConfig+")")
		},
		Setup: func(ctx context.Context, req *cli.SetupRequest) (*cli.App, error) {
			path := cmp.Or(o.Getenv(EnvConfig), DefaultFile)
			if req.Flags != nil {
				if f := req.Flags.Lookup("config"); f != nil {
					path = f.Value.String()
				}
			}
			// A file named on purpose must exist; the default one may be
			// missing when the environment gives everything.
			explicit := o.Getenv(EnvConfig) != "" || path != DefaultFile
			return o.setup(ctx, path, explicit, req)
		},
	}
}

// setup builds the App from the configuration file at path (optional when
// it is the default name, so that the environment alone can drive the
// commands that need no models).
func (o *CLIOpts) setup(_ context.Context, path string, explicit bool, req *cli.SetupRequest) (*cli.App, error) {
	cfg, err := Load(path, &LoadOpts{Optional: !explicit, Getenv: o.Getenv})
	if err != nil {
		return nil, cli.UsageError{Err: err}
	}
	file := cfg.fileName()
	var missing []error
	need := func(ok bool, key, env string) {
		if !ok {
			missing = append(missing, errtext.Errorf("%s: required by %s: set it in %s or %s", key, req.Command, file, env))
		}
	}
	needsDB := req.Needs.DB || req.Needs.Master || req.Needs.Replica
	need(!needsDB || cfg.Database.URL != "", "database.url", EnvDatabaseURL)
	need(!req.Needs.Transport || cfg.Transport.URL != "" || o.OpenTransport != nil, "transport.url", EnvTransportURL)
	need(!req.Needs.Queue || cfg.Queue != "", "queue", EnvQueue)
	if req.Needs.Master && len(cfg.Masters)+len(o.Masters) == 0 {
		missing = append(missing, errtext.Errorf("masters: %s needs master models: declare them in %s", req.Command, file))
	}
	if req.Needs.Replica && len(cfg.Replicas)+len(o.Replicas) == 0 {
		missing = append(missing, errtext.Errorf("replicas: %s needs replica models: declare them in %s", req.Command, file))
	}
	if err := problems(missing); err != nil {
		return nil, cli.UsageError{Err: err}
	}

	app := &cli.App{
		Queue:    cfg.Queue,
		Consumer: cfg.ConsumerConfig(),
		Secrets:  cfg.Passwords(),
	}
	app.DeadLetterQueue = cfg.DeadLetterQueue
	app.Relay.BatchSize = cfg.Master.RelayBatch
	app.Relay.PollInterval = cfg.Master.RelayPollInterval
	app.ResendQueue = cfg.Master.ResendQueue

	if cfg.Database.URL != "" {
		db, err := cfg.OpenDB()
		if errors.Is(err, ErrNoDatabaseFile) {
			return nil, errtext.Errorf("database unreachable: %w", errors.Unwrap(err))
		}
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		app.SizePool = poolSizer(db.SQL, cfg.Database.MaxOpenConns)
		app.SizePool(0)
		app.DB, app.Dialect, app.Driver, app.ListenConnString = db.SQL, db.Dialect, db.Driver(), db.ListenConnString
		if cfg.Master.Outbox == cqrsync.OutboxWAL {
			if db.Kind != "postgres" {
				_ = db.SQL.Close()
				return nil, cli.UsageError{Err: errtext.Errorf("master.outbox: wal needs PostgreSQL, and database.url is %s: use outbox: table", db.Kind)}
			}
			app.WAL = &cli.WALOutbox{ConnString: db.ListenConnString, Slot: cfg.Master.WALSlot, Publication: cfg.Master.WALPublication}
		}
		app.Close = db.SQL.Close
		if err := o.register(app, cfg, req.Logger); err != nil {
			_ = db.SQL.Close()
			return nil, cli.UsageError{Err: problems([]error{err})}
		}
	}
	switch {
	case o.OpenTransport != nil:
		app.OpenTransport = func(ctx context.Context) (*cli.Transport, error) { return o.OpenTransport(ctx, cfg, req.Logger) }
	case cfg.Transport.URL != "":
		kind, err := transportKind(cfg.Transport.URL)
		if err != nil { // Validate checked it; a kind unregistered since?
			return nil, cli.UsageError{Err: err}
		}
		treq := &TransportRequest{URL: cfg.Transport.URL, Exchange: cfg.Transport.Exchange, Logger: req.Logger}
		app.OpenTransport = func(ctx context.Context) (*cli.Transport, error) { return kind.Open(ctx, treq) }
	}
	return app, nil
}

// defaultPoolSize is the pool size when the configuration sets none and a
// command needs no more.
const defaultPoolSize = 10

// poolSizer returns the App's SizePool: the pool keeps open and idle as
// many connections as configured, else as the command needs (at least
// defaultPoolSize), so that a connection released by one transaction is
// reused by the next instead of being closed.
func poolSizer(db *sql.DB, configured int) func(int) {
	return func(need int) {
		n := cmp.Or(configured, max(need, defaultPoolSize))
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
	}
}

// problems joins errors into one: a single one as is, several as an
// indented list, one per line.
func problems(errs []error) error {
	var lines []string
	for _, err := range errs {
		if err != nil {
			lines = append(lines, strings.Split(err.Error(), "\n")...)
		}
	}
	switch len(lines) {
	case 0:
		return nil
	case 1:
		return errors.New(lines[0])
	}
	return errtext.Errorf("%d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// register creates the App's Master and Replica with the file's models and
// the Go ones, when there are any, and reports every model's problems.
func (o *CLIOpts) register(app *cli.App, cfg *Config, logger *slog.Logger) error {
	var errs []error
	if len(cfg.Masters)+len(o.Masters) > 0 {
		master, err := cfg.NewMaster(app.Driver, logger, o.Masters...)
		errs = append(errs, err)
		app.Master = master
	}
	if len(cfg.Replicas)+len(o.Replicas) > 0 {
		replica, err := cfg.NewReplica(app.Driver, logger, o.Replicas...)
		errs = append(errs, err)
		app.Replica = replica
	}
	return errors.Join(errs...)
}

package main

import (
	"cmp"
	"context"
	"errors"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/internal/config"
	"github.com/cqrsync/cqrsync/internal/dburl"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// options returns the command tree's options: a --config flag, and a setup
// that builds the App from that file and the environment.
func options() *cli.Options {
	path := cmp.Or(os.Getenv(config.EnvConfig), config.DefaultFile)
	return &cli.Options{
		Flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&path, "config", path, "configuration file (env "+config.EnvConfig+")")
		},
		Setup: func(ctx context.Context, req *cli.SetupRequest) (*cli.App, error) {
			// A file named on purpose must exist; the default one may be
			// missing when the environment gives everything.
			explicit := os.Getenv(config.EnvConfig) != "" || path != config.DefaultFile
			return setup(ctx, path, explicit, req)
		},
	}
}

// setup builds the App from the configuration file at path (optional when
// it is the default name, so that the environment alone can drive the
// commands that need no models).
func setup(_ context.Context, path string, explicit bool, req *cli.SetupRequest) (*cli.App, error) {
	cfg, err := config.Load(path, &config.LoadOpts{Optional: !explicit})
	if err != nil {
		return nil, cli.UsageError{Err: err}
	}
	file := cmp.Or(cfg.File, "the configuration file")
	var missing []error
	need := func(ok bool, key, env string) {
		if !ok {
			missing = append(missing, errtext.Errorf("%s: required by %s: set it in %s or %s", key, req.Command, file, env))
		}
	}
	needsDB := req.Needs.DB || req.Needs.Master || req.Needs.Replica
	need(!needsDB || cfg.Database.URL != "", "database.url", config.EnvDatabaseURL)
	need(!req.Needs.Transport || cfg.Transport.URL != "", "transport.url", config.EnvTransportURL)
	need(!req.Needs.Queue || cfg.Queue != "", "queue", config.EnvQueue)
	if req.Needs.Master && len(cfg.Masters) == 0 {
		missing = append(missing, errtext.Errorf("masters: %s needs master models: declare them in %s", req.Command, file))
	}
	if req.Needs.Replica && len(cfg.Replicas) == 0 {
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

	if cfg.Database.URL != "" {
		db, u, err := dburl.Open(cfg.Database.URL)
		if errors.Is(err, dburl.ErrNoFile) {
			return nil, errtext.Errorf("database unreachable: %w", err)
		}
		if err != nil {
			return nil, cli.UsageError{Err: errtext.Errorf("%s: %w", cfg.DatabaseSource(), err)}
		}
		db.SetMaxOpenConns(cmp.Or(cfg.Database.MaxOpenConns, 10))
		app.DB, app.Dialect, app.ListenConnString = db, u.Dialect, u.ListenConnString
		app.Close = db.Close
		if err := register(app, cfg, req); err != nil {
			_ = db.Close()
			return nil, cli.UsageError{Err: problems([]error{err})}
		}
	}
	if cfg.Transport.URL != "" {
		url, exchange := cfg.Transport.URL, cfg.Transport.Exchange
		app.OpenTransport = func(ctx context.Context) (*cli.Transport, error) {
			t, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: url, Exchange: exchange, Logger: req.Logger})
			if err != nil {
				return nil, err
			}
			return &cli.Transport{Publisher: t, Subscriber: t, DeadLetters: t, Close: t.Close}, nil
		}
	}
	return app, nil
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

// register creates the Master and the Replica with the declared models.
func register(app *cli.App, cfg *config.Config, req *cli.SetupRequest) error {
	var errs []error
	if len(cfg.Masters) > 0 {
		mc := cfg.MasterConfig()
		mc.Dialect, mc.Logger = app.Dialect, req.Logger
		master, err := cqrsync.NewMaster(&mc)
		if err != nil {
			return err
		}
		for _, m := range cfg.MasterModels() {
			errs = append(errs, master.Register(m))
		}
		app.Master = master
	}
	if len(cfg.Replicas) > 0 {
		rc := cfg.ReplicaConfig()
		rc.Dialect, rc.Logger = app.Dialect, req.Logger
		replica, err := cqrsync.NewReplica(&rc)
		if err != nil {
			return err
		}
		for _, m := range cfg.ReplicaModels() {
			errs = append(errs, replica.Register(m))
		}
		app.Replica = replica
	}
	return errors.Join(errs...)
}

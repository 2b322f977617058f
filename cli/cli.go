// Package cli is the cqrsync command tree: django-cqrs's management
// commands (consume, bulk dump and load, sync, the diff and repair
// pipelines, dead letters) plus migrate, the relay and the outbox status.
//
// cmd/cqrsync runs it with models declared in a configuration file, and
// adds its demo and bench commands through [Options.Commands], so that a
// program mounting the tree links neither them nor the SQLite and MySQL
// drivers they use. A
// service can mount the same tree into its own binary, with the models it
// registers in Go (custom serializers, handlers, filters):
//
//	root := cli.NewRootCommand(&cli.Env{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, &cli.Options{
//		Setup: func(ctx context.Context, req *cli.SetupRequest) (*cli.App, error) {
//			return &cli.App{DB: db, Dialect: sqldialect.Postgres(), Master: master, Replica: replica,
//				Queue: "billing", OpenTransport: openRabbitMQ}, nil
//		},
//	})
//	myRoot.AddCommand(root.Commands()...) // or run root itself
//
// # Streams and exit codes
//
// Data goes to stdout and nothing else does, except where django-cqrs
// prints its summaries there too (sync, diff-sync, dead-letters retry and
// purge), so that scripts written for it keep working. Progress, logs and
// errors go to stderr; progress is shown only when stderr is a terminal
// (or with --progress). The exit code is 0 on success, 2 when the command
// was called wrongly (flags, configuration, a --cqrs-id or --filter that
// does not fit the models, a table or column the models need and the
// database lacks) and 1 when it ran and failed; the reason is one
// line on stderr, never a usage dump.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
)

// Exit codes that scripts can rely on.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // the command ran and failed (e.g. the demo diverged, a database is unreachable)
	ExitUsage   = 2 // bad flags, arguments or configuration
)

// Env is what every command gets: where input comes from and output goes.
type Env struct {
	// In is read by the commands that take a stream (-i -): the diff and
	// repair pipeline, bulk-load. Nil reads nothing.
	In io.Reader
	// Out receives data and reports (stdout).
	Out io.Writer
	// Err receives progress, logs and errors (stderr). Progress is drawn on
	// it only when it is a terminal (an *os.File on a TTY), unless a command
	// is given --progress.
	Err io.Writer
}

// Options configures the command tree.
type Options struct {
	// Setup builds the App a command works on. It is called once per
	// command run, after the command's flags were checked and before it
	// connects to anything; req says what the command needs. Return a
	// UsageError for problems of configuration (exit code 2). Nil: only the
	// commands of Commands work; the others say that the tree has no setup.
	Setup func(ctx context.Context, req *SetupRequest) (*App, error)
	// Flags, when set, adds persistent flags to the root command, e.g. the
	// binary's --config.
	Flags func(fs *pflag.FlagSet)
	// Commands, when set, returns commands to add to the tree (cmd/cqrsync
	// adds demo and bench). It is called each time a tree is built, so it
	// must return new commands every time. Their RunE may return a
	// UsageError (exit code 2); [Logger] gives them the tree's logger and
	// cmd.OutOrStdout / cmd.ErrOrStderr its Env's streams.
	Commands func() []*cobra.Command
}

// UsageError marks an error in how a command was called or configured: bad
// flags or arguments, an invalid configuration. Run exits with ExitUsage for
// it.
type UsageError struct {
	// Err says what is wrong and how to fix it.
	Err error
}

// Error returns the cause's message.
func (e UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e UsageError) Unwrap() error { return e.Err }

// state is shared by the commands of one tree: the global flags and what
// the run opened.
type state struct {
	env      *Env
	opts     *Options
	logLevel string
	verbose  bool
	sessions []*session
	secrets  []string
}

// NewRootCommand returns the cqrsync command tree. opts may be nil: the
// commands then say that the tree has no setup.
func NewRootCommand(env *Env, opts *Options) *cobra.Command {
	root, _ := newRoot(env, opts)
	return root
}

func newRoot(env *Env, opts *Options) (*cobra.Command, *state) {
	if env.In == nil {
		env.In = strings.NewReader("")
	}
	st := &state{env: env, opts: opts}
	root := &cobra.Command{
		Use:   "cqrsync",
		Short: "CQRS data synchronisation between services, compatible with django-cqrs",
		Long: `cqrsync keeps read-only copies of a master service's tables in replica
services' own SQL databases, through a message broker, with a transactional
outbox, revision-guarded apply and tombstones.

Its commands mirror django-cqrs's management commands and speak the same
stream formats, so a pipe can mix Go and Django services. Data goes to
stdout; progress, logs and errors to stderr. Exit codes: 0 success, 1 the
command failed, 2 it was called or configured wrongly.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(env.In)
	root.SetOut(env.Out)
	root.SetErr(env.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{Err: err} })
	pf := root.PersistentFlags()
	pf.StringVar(&st.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	pf.BoolVarP(&st.verbose, "verbose", "v", false, "log debug details to stderr (--log-level debug)")
	if opts != nil && opts.Flags != nil {
		opts.Flags(pf)
	}
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		switch strings.ToLower(st.logLevel) {
		case "debug", "info", "warn", "warning", "error":
			return nil
		}
		return UsageError{Err: errtext.Errorf("--log-level %q: use debug, info, warn or error", st.logLevel)}
	}
	root.AddCommand(
		newConsumeCommand(st),
		newRelayCommand(st),
		newOutboxCommand(st),
		newMigrateCommand(st),
		newBulkDumpCommand(st),
		newBulkLoadCommand(st),
		newSyncCommand(st),
		newDiffMasterCommand(st),
		newDiffReplicaCommand(st),
		newDiffSyncCommand(st),
		newDeletedDiffReplicaCommand(st),
		newDeletedDiffMasterCommand(st),
		newDeletedSyncReplicaCommand(st),
		newDeadLettersCommand(st),
		newWaitCommand(st),
		newSchemaCommand(st),
		newCheckCommand(st),
		newResendCommand(st),
		newVerifyCommand(st),
		newVerifyServeCommand(st),
		newAdminCommand(st),
		newCaptureCommand(st),
	)
	if opts != nil && opts.Commands != nil {
		root.AddCommand(opts.Commands()...)
	}
	return root, st
}

// Main runs the command tree with os.Args and returns the process exit
// code. SIGINT and SIGTERM cancel the command's context, so long-running
// commands stop gracefully.
func Main(opts *Options) int {
	env := &Env{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, env, opts, os.Args[1:])
}

// Run runs the command tree with args and returns the exit code; an error
// is printed to env.Err as one line (a configuration with several problems
// lists them, one per line).
func Run(ctx context.Context, env *Env, opts *Options, args []string) int {
	root, st := newRoot(env, opts)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	for _, s := range st.sessions {
		if cerr := s.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ue UsageError
	if errors.As(err, &ue) || isCobraUsage(err) || errors.Is(err, cqrsync.ErrBadFilter) || errors.Is(err, cqrsync.ErrSchema) {
		code = ExitUsage
	}
	fmt.Fprintf(env.Err, "cqrsync: %s\n", errorLine(cmd, err, code == ExitUsage && errors.As(err, &ue), st.secrets))
	return code
}

// errorLine formats err for stderr: prefixed with the command's name (Run
// prints "cqrsync: " before it, so the error's own leading "cqrsync: " is
// dropped, see internal/errtext), secrets scrubbed, and on one line unless
// it is a usage error that lists several problems.
func errorLine(cmd *cobra.Command, err error, multiline bool, secrets []string) string {
	msg := errtext.Cause(err)
	for _, s := range secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	if !multiline {
		var b strings.Builder
		for l := range strings.SplitSeq(msg, "\n") {
			l = strings.TrimSpace(l)
			if l == "" {
				continue
			}
			if b.Len() > 0 {
				if strings.HasSuffix(b.String(), ":") {
					b.WriteString(" ")
				} else {
					b.WriteString("; ")
				}
			}
			b.WriteString(l)
		}
		msg = b.String()
	}
	prefix := ""
	if cmd != nil && cmd.HasParent() && !isCobraUsage(err) {
		name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
		prefix = name + ": "
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, name+":"), " ")
	}
	if errors.Is(err, context.Canceled) {
		// After the command's name, which the message names only once.
		msg = "interrupted: " + msg
	}
	return prefix + msg
}

// isCobraUsage recognises cobra's own argument errors, which it does not
// type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "accepts ", "requires ", "unknown shorthand flag", "unknown flag", "required flag", "invalid argument", "flag needs an argument", "if any flags in the group"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// logger returns the commands' logger: text on stderr at the chosen level.
func (st *state) logger() *slog.Logger {
	return newLogger(st.env.Err, st.logLevel, st.verbose)
}

// Logger returns the logger of the tree cmd belongs to: text on its stderr
// (cmd.ErrOrStderr) at the level of --log-level, or debug with --verbose.
// Commands added through [Options.Commands] use it to log like the others.
func Logger(cmd *cobra.Command) *slog.Logger {
	level, verbose := "warn", false
	if f := cmd.Flag("log-level"); f != nil {
		level = f.Value.String()
	}
	if f := cmd.Flag("verbose"); f != nil {
		verbose = f.Value.String() == "true"
	}
	return newLogger(cmd.ErrOrStderr(), level, verbose)
}

// newLogger returns a text logger on w at level ("debug", "info", "warn"
// or "error"; warn otherwise), or debug when verbose.
func newLogger(w io.Writer, level string, verbose bool) *slog.Logger {
	l := slog.LevelWarn
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "error":
		l = slog.LevelError
	}
	if verbose {
		l = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// run opens a session for a command, runs fn and closes the session when
// the command ends.
func (st *state) run(cmd *cobra.Command, needs Needs, check func(app *App) error, fn func(s *session) error) error {
	name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	s, err := st.open(cmd.Context(), name, cmd.Flags(), needs, check)
	if err != nil {
		return err
	}
	return fn(s)
}

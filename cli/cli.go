// Package cli is the cqrsync command tree. cmd/cqrsync runs it as is; a
// service can mount it into its own binary to get the same tools for the
// models it registers in Go.
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
)

// Exit codes that scripts can rely on.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // the command ran and failed (e.g. the demo diverged)
	ExitUsage   = 2 // bad flags or arguments
)

// Env is what every command gets: where output goes.
type Env struct {
	// Out receives data and reports (stdout).
	Out io.Writer
	// Err receives progress, logs and errors (stderr).
	Err io.Writer
}

// usageError marks errors in how a command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// NewRootCommand returns the cqrsync command tree.
func NewRootCommand(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "cqrsync",
		Short: "CQRS data synchronisation between services, compatible with django-cqrs",
		Long: `cqrsync keeps read-only copies of a master service's tables in replica
services' own SQL databases, through a message broker, with a transactional
outbox, revision-guarded apply and tombstones.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(env.Out)
	root.SetErr(env.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newDemoCommand(env))
	return root
}

// Main runs the command tree with os.Args and returns the process exit
// code. SIGINT and SIGTERM cancel the command's context, so long-running
// commands stop gracefully.
func Main() int {
	env := &Env{Out: os.Stdout, Err: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, env, os.Args[1:])
}

// Run runs the command tree with args and returns the exit code; errors are
// printed to env.Err as one line.
func Run(ctx context.Context, env *Env, args []string) int {
	root := NewRootCommand(env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(env.Err, "cqrsync: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}

// isCobraUsage recognises cobra's own argument errors, which it does not
// type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "accepts ", "requires ", "unknown shorthand flag", "unknown flag"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// logger returns the commands' logger: text on stderr at the given level.
func logger(env *Env, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(env.Err, &slog.HandlerOptions{Level: level}))
}

package cli_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync/cli"
)

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"migrate", "--nope"}, "unknown flag: --nope"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad log level", []string{"--log-level", "loud", "migrate"}, `--log-level "loud"`},
		{"no setup", []string{"outbox", "status"}, "no setup: pass cli.Options.Setup"},
		{"group without subcommand", []string{"dead-letters"}, "name a subcommand: dump, retry or purge"},
		{"bad flag value", []string{"bulk-dump", "-c", "x", "--batch", "many"}, `invalid argument "many"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, "", c.args...)
			if r.out != "" {
				t.Fatalf("stdout %q", r.out)
			}
			r.fails(t, cli.ExitUsage, c.want)
		})
	}
}

// TestHelpHasExamples checks that every command has an example in its help.
func TestHelpHasExamples(t *testing.T) {
	t.Parallel()
	root := cli.NewRootCommand(&cli.Env{}, nil)
	var check func(prefix []string, cmds []*cobraCommand)
	check = func(prefix []string, cmds []*cobraCommand) {
		for _, c := range cmds {
			if c.Name() == "help" || c.Name() == "completion" || c.Hidden {
				continue
			}
			path := append(append([]string(nil), prefix...), c.Name())
			if c.Example == "" {
				t.Errorf("%s has no example", strings.Join(path, " "))
				continue
			}
			r := run(t, nil, "", append(path, "--help")...)
			if r.code != cli.ExitOK || !strings.Contains(r.out, "Examples:") || !strings.Contains(r.out, "cqrsync "+path[0]) {
				t.Errorf("%s --help (exit %d):\n%s", strings.Join(path, " "), r.code, r.out)
			}
			check(path, c.Commands())
		}
	}
	check(nil, root.Commands())
}

// TestOptionsCommands checks that a command added through Options.Commands
// runs in the tree like its own: the tree's streams, its --log-level
// through cli.Logger, and a UsageError's exit code; and that each tree
// gets commands of its own.
func TestOptionsCommands(t *testing.T) {
	t.Parallel()
	built := 0
	opts := &cli.Options{Commands: func() []*cobra.Command {
		built++
		var fail bool
		cmd := &cobra.Command{
			Use: "hello", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if fail {
					return cli.UsageError{Err: errors.New("--fail was given")}
				}
				cli.Logger(cmd).Info("logged at info")
				cli.Logger(cmd).Debug("logged at debug")
				_, err := io.WriteString(cmd.OutOrStdout(), "hello\n")
				return err
			},
		}
		cmd.Flags().BoolVar(&fail, "fail", false, "fail as called wrongly")
		return []*cobra.Command{cmd}
	}}
	r := run(t, opts, "", "--log-level", "info", "hello")
	r.ok(t)
	if r.out != "hello\n" || !strings.Contains(r.errOut, "logged at info") || strings.Contains(r.errOut, "logged at debug") {
		t.Fatalf("hello --log-level info: stdout %q, stderr %q", r.out, r.errOut)
	}
	if r = run(t, opts, "", "hello", "-v"); !strings.Contains(r.errOut, "logged at debug") {
		t.Fatalf("hello -v: stderr %q", r.errOut)
	}
	if r = run(t, opts, "", "hello"); r.errOut != "" {
		t.Fatalf("hello at the default level logged: %q", r.errOut)
	}
	run(t, opts, "", "hello", "--fail").fails(t, cli.ExitUsage, "hello: --fail was given")
	if built != 4 {
		t.Fatalf("Options.Commands called %d times for 4 trees", built)
	}
}

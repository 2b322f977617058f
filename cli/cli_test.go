package cli_test

import (
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/cli"
)

func TestDemoCommand(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "", "demo", "--changes", "300", "--writers", "2", "--workers", "2", "--dir", t.TempDir(), "--seed", "7")
	if r.code != cli.ExitOK || !strings.Contains(r.out, "converged") || !strings.Contains(r.out, "seed 7") {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"demo", "--nope"}, "unknown flag: --nope"},
		{"zero changes", []string{"demo", "--changes", "0"}, "must be at least 1"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad log level", []string{"--log-level", "loud", "demo"}, `--log-level "loud"`},
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

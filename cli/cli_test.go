package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/cli"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Run(t.Context(), &cli.Env{Out: &out, Err: &errOut}, args)
	return code, out.String(), errOut.String()
}

func TestDemoCommand(t *testing.T) {
	t.Parallel()
	code, out, errOut := run(t, "demo", "--changes", "300", "--writers", "2", "--workers", "2", "--dir", t.TempDir(), "--seed", "7")
	if code != cli.ExitOK || !strings.Contains(out, "converged") || !strings.Contains(out, "seed 7") {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
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
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, c.args...)
			if code != cli.ExitUsage || out != "" || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want a non-zero exit and one line naming %q", code, out, errOut, c.want)
			}
		})
	}
}

func TestHelpHasExamples(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "demo", "--help")
	if code != cli.ExitOK || !strings.Contains(out, "Examples:") || !strings.Contains(out, "cqrsync demo --changes") {
		t.Fatalf("demo --help (exit %d):\n%s", code, out)
	}
}

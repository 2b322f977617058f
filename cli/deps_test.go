package cli_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestMountingLinksNoBenchNorDrivers checks that a program mounting the
// command tree (cli.NewRootCommand) links neither the benchmark nor the
// demo, nor the SQLite and MySQL drivers they bring: the cqrsync binary adds
// those commands itself (cmd/cqrsync), and a service imports the drivers it
// uses.
func TestMountingLinksNoBenchNorDrivers(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cli: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !slices.Contains(deps, "github.com/spf13/cobra") {
		t.Fatalf("go list -deps ./cli listed %d packages, without cobra: %q", len(deps), out)
	}
	for _, banned := range []string{
		"github.com/cqrsync/cqrsync/internal/bench",
		"github.com/cqrsync/cqrsync/internal/broker",
		"github.com/cqrsync/cqrsync/internal/demo",
		"modernc.org/sqlite",
		"github.com/go-sql-driver/mysql",
	} {
		if slices.Contains(deps, banned) {
			t.Errorf("package cli depends on %s: move what needs it out of cli (cmd/cqrsync adds its own commands through Options.Commands)", banned)
		}
	}
}

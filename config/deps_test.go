package config_test

import (
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/config"
)

// goListDeps returns `go list -deps` of a package.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// TestDriversAreOptIn checks that package config links no database driver
// of its own, and that each driver package links only its driver: a
// MySQL-only program links neither pgx's database/sql driver nor SQLite
// because of config. (The pgx core that package cli links, for the relay's
// LISTEN through outbox/pglisten, is cli's own, not config's; the root
// package links no pgx.)
func TestDriversAreOptIn(t *testing.T) {
	t.Parallel()
	const (
		pgx    = "github.com/jackc/pgx/v5/stdlib"
		mysql  = "github.com/go-sql-driver/mysql"
		sqlite = "modernc.org/sqlite"
	)
	mounted := goListDeps(t, "github.com/cqrsync/cqrsync/cli")
	cases := []struct {
		pkg    string
		want   string   // the driver it must link; "" none
		banned []string // drivers it must not link
	}{
		{".", "", []string{mysql, sqlite}},
		{"./mysql", mysql, []string{pgx, sqlite}},
		{"./sqlite", sqlite, []string{pgx, mysql}},
		{"./postgres", pgx, []string{mysql, sqlite}},
	}
	for _, c := range cases {
		deps := goListDeps(t, c.pkg)
		if c.want != "" && !slices.Contains(deps, c.want) {
			t.Errorf("%s does not link %s", c.pkg, c.want)
		}
		for _, b := range c.banned {
			if slices.Contains(deps, b) {
				t.Errorf("%s links %s: only its driver package may", c.pkg, b)
			}
		}
		if c.pkg == "." {
			for _, d := range deps {
				if strings.HasPrefix(d, "github.com/jackc/") && !slices.Contains(mounted, d) {
					t.Errorf("config links %s, which package cli does not: pgx belongs in config/postgres", d)
				}
			}
		}
	}
}

// TestURLWithoutDriverNamesTheImport checks that a URL whose driver package
// the program does not import is refused with the import to add. This test
// binary must not import config/mysql.
func TestURLWithoutDriverNamesTheImport(t *testing.T) {
	t.Parallel()
	const want = `import _ "github.com/cqrsync/cqrsync/config/mysql"`
	_, err := config.Parse("cqrsync.yaml", []byte("database:\n  url: mysql://u:hunter2@db:3306/app\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "database.url: ") || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Parse: %v; want a database.url problem naming %s", err, want)
	}
	if _, err := config.OpenDB("mariadb://u:hunter2@db/app"); !errors.Is(err, config.ErrNoDriver) || !strings.Contains(err.Error(), want) {
		t.Fatalf("OpenDB: %v; want ErrNoDriver naming %s", err, want)
	}
}

// TestCLIConfigFlagPerRun checks that --config applies to its own run
// only: one CLI options value serves several runs (tests, a service
// running commands in turn).
func TestCLIConfigFlagPerRun(t *testing.T) {
	t.Parallel()
	opts := config.CLI(&config.CLIOpts{Getenv: func(string) string { return "" }})
	run := func(args ...string) string {
		var errOut strings.Builder
		if code := cli.Run(t.Context(), &cli.Env{Out: io.Discard, Err: &errOut}, opts, args); code != cli.ExitUsage {
			t.Fatalf("%v: exit %d, want %d: %s", args, code, cli.ExitUsage, errOut.String())
		}
		return errOut.String()
	}
	missing := filepath.Join(t.TempDir(), "other.yaml")
	if got := run("--config", missing, "migrate"); !strings.Contains(got, "config file "+missing+" does not exist") {
		t.Fatalf("--config %s: %s", missing, got)
	}
	if got := run("migrate"); !strings.Contains(got, "database.url: required by migrate") {
		t.Fatalf("the next run without --config: %s", got)
	}
}

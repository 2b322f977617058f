package cqrsync_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestRootLinksNoDatabaseDriver checks that the root package links no
// database driver: a MySQL-only program must not carry pgx, and the
// drivers' specifics live in sqldialect/pgxv5 and internal/dberr.
func TestRootLinksNoDatabaseDriver(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps .: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/cqrsync/cqrsync/sqldialect") {
		t.Fatalf("go list -deps . listed %d packages, without sqldialect: %q", len(deps), out)
	}
	for _, dep := range deps {
		for _, banned := range []string{"github.com/jackc/", "github.com/go-sql-driver/", "modernc.org/sqlite"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("package cqrsync depends on %s: read the driver's errors through interfaces or internal/dberr, and keep its code in a driver package", dep)
			}
		}
	}
}

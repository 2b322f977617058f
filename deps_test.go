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

// TestObservabilityIsOptIn checks that Prometheus and OpenTelemetry are
// linked only by their adapters (hook/promhook, hook/otelhook): the library,
// the relay and the transports carry neither, and package hook imports only
// the standard library.
func TestObservabilityIsOptIn(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{".", "./outbox", "./transport/rabbitmq", "./hook"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		for _, dep := range deps {
			if strings.HasPrefix(dep, "github.com/prometheus/") || strings.HasPrefix(dep, "go.opentelemetry.io/") {
				t.Errorf("%s depends on %s: keep metrics and tracing libraries in hook/promhook and hook/otelhook", pkg, dep)
			}
		}
		if pkg == "./hook" && !slices.Equal(deps, []string{"github.com/cqrsync/cqrsync/hook"}) {
			t.Errorf("package hook imports %q beyond the standard library: keep it standard-library-only", deps)
		}
	}
}

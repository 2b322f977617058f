package bench_test

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/internal/bench"
	"github.com/cqrsync/cqrsync/internal/testenv"
)

// TestRunShortNATS runs `cqrsync bench --short --transport nats://…` once
// on SQLite (not under go test -short): it completes, measures JetStream's
// raw publish and pull rates, and the replica converges. The figures are
// not checked.
func TestRunShortNATS(t *testing.T) {
	testenv.Slow(t, "a benchmark run")
	t.Parallel()
	var progress bytes.Buffer
	rep, err := bench.Run(t.Context(), bench.ShortOptions(bench.Options{
		MasterDB: "sqlite", ReplicaDB: "sqlite", Transport: testenv.NATSURL(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Progress: &progress,
	}))
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if rep.Check == nil || !rep.Check.Converged {
		t.Fatalf("the replica did not converge: %+v", rep.Check)
	}
	if rep.Raw == nil || rep.Drain == nil {
		t.Fatalf("a phase is missing from the report: %+v", rep)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "NATS") {
		t.Fatalf("WriteTable: %v; the broker's version should name NATS:\n%s", err, table.String())
	}
}

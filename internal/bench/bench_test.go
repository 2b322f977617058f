package bench_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/internal/bench"
	"github.com/cqrsync/cqrsync/internal/testenv"
)

// TestRunShort runs `cqrsync bench --short` once per database pair (not
// under go test -short) and asserts only that it completes and that the
// replica converged; the figures depend on the machine and are not
// checked. RabbitMQ, NATS (and PostgreSQL) come from testenv: skipped locally
// when absent, a failure under CI=true.
func TestRunShort(t *testing.T) {
	testenv.Slow(t, "a benchmark run")
	t.Parallel()
	for _, tc := range []struct {
		name     string
		postgres bool
		url      func(testing.TB) string // the broker; default RabbitMQ
		pipeline bool                    // the broker measures the raw pipeline
	}{
		{name: "sqlite-rabbitmq-sqlite"},
		{name: "postgres-rabbitmq-postgres", postgres: true},
		{name: "sqlite-nats-sqlite", url: testenv.NATSURL, pipeline: true},
		{name: "sqlite-kfake-sqlite", url: func(testing.TB) string { return "kafka://kfake" }}, // in-process: no Kafka server here
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := testenv.AMQPURL
			if tc.url != nil {
				url = tc.url
			}
			opts := bench.Options{
				MasterDB: "sqlite", ReplicaDB: "sqlite", Transport: url(t),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			if tc.postgres {
				u := testenv.PostgresURL(t)
				opts.MasterDB, opts.ReplicaDB = u, u
				opts.Insert = true // creates through Master.Insert here, INSERT + Create on SQLite
			}
			var progress bytes.Buffer
			opts.Progress = &progress
			rep, err := bench.Run(t.Context(), bench.ShortOptions(opts))
			if err != nil {
				t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
			}
			if rep.Check == nil || !rep.Check.Converged {
				t.Fatalf("the replica did not converge: %+v", rep.Check)
			}
			if rep.Throughput == nil || rep.Drain == nil || len(rep.Steady) != 1 || rep.Raw == nil {
				t.Fatalf("a phase is missing from the report: %+v", rep)
			}
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "converged") {
				t.Fatalf("WriteTable: %v\n%s", err, table.String())
			}
			if got := rep.Raw.Pipeline > 0; got != tc.pipeline {
				t.Fatalf("raw pipeline measured: %v (%v/s), want %v", got, rep.Raw.Pipeline, tc.pipeline)
			}
			if tc.pipeline && (!strings.Contains(table.String(), "consume → upsert") || rep.Drain.DrainVsRawPipeline <= 0) {
				t.Fatalf("the report lacks the raw pipeline (ratio %v):\n%s", rep.Drain.DrainVsRawPipeline, table.String())
			}
			var js bytes.Buffer
			if err := rep.WriteJSON(&js); err != nil || !json.Valid(js.Bytes()) {
				t.Fatalf("WriteJSON: %v\n%s", err, js.String())
			}
		})
	}
}

// TestRunHooksRounds runs a tiny hooks-off/on comparison (SQLite →
// RabbitMQ → SQLite) and checks its shape: the rounds alternate, each side
// has a median, the replica converged. The figures are not checked.
func TestRunHooksRounds(t *testing.T) {
	testenv.Slow(t, "a benchmark run")
	t.Parallel()
	rep, err := bench.Run(t.Context(), bench.Options{
		MasterDB: "sqlite", ReplicaDB: "sqlite", Transport: testenv.AMQPURL(t), SkipRaw: true,
		Changes: 200, HooksRounds: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	h := rep.Hooks
	if h == nil || len(h.Rounds) != 4 || rep.Throughput != nil {
		t.Fatalf("report: hooks %+v, throughput %+v; want 4 hook rounds instead of the throughput phase", h, rep.Throughput)
	}
	for i, want := range []bool{false, true, true, false} {
		if h.Rounds[i].Hooks != want || h.Rounds[i].EndToEnd <= 0 {
			t.Errorf("round %d = %+v, want hooks %v and a rate", i+1, h.Rounds[i], want)
		}
	}
	if h.EndToEndOff <= 0 || h.EndToEndOn <= 0 || !rep.Check.Converged {
		t.Fatalf("medians %v / %v, converged %v", h.EndToEndOff, h.EndToEndOn, rep.Check.Converged)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "HOOKS OFF vs ON") {
		t.Fatalf("WriteTable: %v\n%s", err, table.String())
	}
}

func TestParseMix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     bench.Mix
		ok       bool
	}{
		{name: "default", in: "60:30:10", want: bench.Mix{Create: 60, Update: 30, Delete: 10}, ok: true},
		{name: "creates only", in: "100:0:0", want: bench.Mix{Create: 100}, ok: true},
		{name: "not 100", in: "50:30:10"},
		{name: "two parts", in: "90:10"},
		{name: "four parts", in: "50:30:10:10"},
		{name: "no creates", in: "0:90:10"},
		{name: "negative", in: "110:-10:0"},
		{name: "words", in: "a:b:c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := bench.ParseMix(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseMix(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts bench.Options
		ok   bool
	}{
		{name: "defaults", opts: bench.Options{Changes: 1}, ok: true},
		{name: "nothing to run", opts: bench.Options{}},
		{name: "mysql url", opts: bench.Options{Changes: 1, MasterDB: "mysql://root@127.0.0.1:3306/test", ReplicaDB: "sqlite:/tmp/x.db"}, ok: true},
		{name: "mysql dsn", opts: bench.Options{Changes: 1, MasterDB: "root@tcp(127.0.0.1:3306)/test"}, ok: true},
		{name: "unknown scheme", opts: bench.Options{Changes: 1, MasterDB: "oracle://x"}},
		{name: "same sqlite file", opts: bench.Options{Changes: 1, MasterDB: "sqlite:/tmp/a.db", ReplicaDB: "sqlite:/tmp/a.db"}},
		{name: "negative rate", opts: bench.Options{Rates: []float64{-1}}},
		{name: "prefetch too large", opts: bench.Options{Changes: 1, Prefetch: 70000}},
		{name: "hooks rounds", opts: bench.Options{Changes: 1, HooksRounds: 3}, ok: true},
		{name: "hooks rounds without changes", opts: bench.Options{Drain: 1, HooksRounds: 3}},
		{name: "negative hooks rounds", opts: bench.Options{Changes: 1, HooksRounds: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.opts.WithDefaults()
			if err := o.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

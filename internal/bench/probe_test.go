package bench

import (
	"context"
	"database/sql/driver"
	"path/filepath"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
)

func TestProbeSeq(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   any
		seq  int64
		ok   bool
	}{
		{name: "int64", in: probeValue(42), seq: 42, ok: true},
		{name: "text", in: "6485183463413514282", seq: 42, ok: true},
		{name: "bytes", in: []byte("6485183463413514282"), seq: 42, ok: true},
		{name: "zero", in: int64(0)},
		{name: "a key", in: int64(123456)},
		{name: "a microsecond timestamp", in: int64(1_795_000_000_000_000)},
		{name: "other high bits", in: probeValue(42) | 1<<50},
		{name: "a payload", in: "abcdefghijklmnopqrs"},
		{name: "float", in: 1.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seq, ok := probeSeq(tc.in)
			if ok != tc.ok || seq != tc.seq {
				t.Fatalf("probeSeq(%v) = %d, %v; want %d, %v", tc.in, seq, ok, tc.seq, tc.ok)
			}
		})
	}
}

// openProbedTable opens d through probes, with a recorder for sequence
// numbers 1-4, and creates the bench table t.
func openProbedTable(t *testing.T, d *database) (*probed, *recorder, *stmtStats) {
	t.Helper()
	rec := newRecorder()
	rec.reset(1, 4)
	st := newStmtStats()
	p, err := d.openProbed(2, rec, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.close() })
	if _, err := p.db.ExecContext(t.Context(), d.tableDDL("t")); err != nil {
		t.Fatal(err)
	}
	return p, rec, st
}

// TestProbeConnections checks that probe connections report the probes of
// committed transactions only, once each.
func TestProbeConnections(t *testing.T) {
	t.Parallel()
	d := &database{kind: SQLite, driverName: "sqlite", dialect: sqldialect.SQLite(),
		dsn: "file:" + filepath.Join(t.TempDir(), "p.db") + "?_pragma=busy_timeout(5000)&_txlock=immediate"}
	p, rec, st := openProbedTable(t, d)
	db := p.db
	ctx := t.Context()
	write := func(commit bool, seqs ...int64) {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range seqs {
			if _, err := tx.ExecContext(ctx, "INSERT INTO t (id, commit_us, probe, payload) VALUES (?1, ?2, ?3, 'x')", s, 1, probeValue(s)); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rec.commit([]probe{{1, 10}, {2, 20}, {3, 30}}, 3, 100)
	write(false, 1, 2) // rolled back: not seen
	write(true, 1)
	write(true, 2, 3)
	// Arrays of values, as batched statements pass them, are looked into.
	c := &probeConn{rec: rec}
	c.see([]driver.NamedValue{{Value: []any{int64(7), probeValue(4)}}, {Value: []int64{probeValue(5)}}, {Value: []string{"x"}}})
	if len(c.pending) != 2 || c.pending[0].seq != 4 || c.pending[1].seq != 5 {
		t.Fatalf("pending = %+v", c.pending)
	}
	if seen, probes, events := rec.progress(); seen != 3 || probes != 3 || events != 3 {
		t.Fatalf("progress = %d seen, %d probes, %d events; want 3, 3, 3", seen, probes, events)
	}
	kinds := map[string]int64{}
	for _, s := range st.top(10) {
		kinds[s.Statement] = s.Count
	}
	if kinds["INSERT INTO t"] != 5 || kinds["COMMIT"] != 2 || kinds["ROLLBACK"] != 1 || kinds["BEGIN"] != 3 {
		t.Fatalf("statement counts: %v", kinds)
	}
	if txs, mean := rec.applyBatches(); txs != 2 || mean != 1.5 {
		t.Fatalf("applyBatches = %d, %v; want 2, 1.5", txs, mean)
	}
	samples, last := rec.samples()
	if len(samples) != 3 || last == 0 {
		t.Fatalf("samples = %+v, last %d", samples, last)
	}
	for _, s := range samples {
		if s.committed != 100 || s.visible < s.applied || s.applied == 0 {
			t.Fatalf("sample %+v", s)
		}
	}
}

func TestPercentiles(t *testing.T) {
	t.Parallel()
	ns := make([]int64, 100)
	for i := range ns {
		ns[i] = int64(100-i) * 1e6 // 100 ms … 1 ms, unsorted
	}
	got := percentiles(ns)
	want := Percentiles{Count: 100, P50: 50, P95: 95, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Fatalf("percentiles = %+v, want %+v", got, want)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Fatal("percentiles(nil) is not zero")
	}
}

func TestStmtKind(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`INSERT INTO "bench_item" ("id", "x") VALUES ($1, $2)`:              "INSERT INTO bench_item",
		"UPDATE cqrs_outbox SET lease_us = $1 WHERE id IN (\n\t\tSELECT id": "UPDATE cqrs_outbox SET lease_us =",
		"SELECT `pk`, `revision` FROM `cqrs_tombstones` WHERE cqrs_id = ?":  "SELECT pk, revision FROM cqrs_tombstones WHERE cqrs_id =",
		"COMMIT": "COMMIT",
	} {
		if got := stmtKind(in); got != want {
			t.Errorf("stmtKind(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPgxProbe checks the pgx tracer that probes PostgreSQL pools: probes
// of committed transactions are seen once each, whether the transaction
// went through database/sql or was pipelined on the pgx connection (as
// the consumer runs it), and rolled-back ones are not.
func TestPgxProbe(t *testing.T) {
	t.Parallel()
	d := &database{kind: Postgres, driverName: "pgx", dsn: cqrsynctesting.PostgresDSN(t), dialect: sqldialect.Postgres()}
	p, rec, st := openProbedTable(t, d)
	db := p.db
	ctx := t.Context()
	insert := "INSERT INTO t (id, commit_us, probe, payload) VALUES ($1, 1, $2, 'x')"
	rec.commit([]probe{{1, 10}, {2, 20}, {3, 30}, {4, 40}}, 4, 100)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, insert, 1, probeValue(1)); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback() // not seen
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, insert, 1, probeValue(1)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Pipelined: the probes travel in arrays, in a deferred statement and
	// in the statement that sends it.
	if !p.drv.Features().Pipeline {
		t.Fatal("the probed PostgreSQL driver does not pipeline: the consumer would not run as measured")
	}
	err = p.drv.RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		ex.(sqldialect.Deferrer).Defer(ctx, "INSERT INTO t (id, commit_us, probe, payload) SELECT id, 1, p, 'x' FROM unnest($1::bigint[], $2::bigint[]) AS v(id, p)",
			[]int64{2, 3}, []int64{probeValue(2), probeValue(3)})
		_, err := ex.Exec(ctx, insert, 4, probeValue(4))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen, probes, events := rec.progress(); seen != 4 || probes != 4 || events != 4 {
		t.Fatalf("progress = %d seen, %d probes, %d events; want 4, 4, 4", seen, probes, events)
	}
	kinds := map[string]int64{}
	for _, s := range st.top(10) {
		kinds[s.Statement] = s.Count
	}
	if kinds["BEGIN"] != 2 || kinds["COMMIT"] != 1 || kinds["ROLLBACK"] != 1 || kinds["INSERT INTO t"] != 2 ||
		kinds["pipeline: BEGIN + INSERT INTO t + INSERT INTO t"] != 1 || kinds["pipeline: COMMIT"] != 1 {
		t.Fatalf("statement counts: %v", kinds)
	}
	if txs, mean := rec.applyBatches(); txs != 2 || mean != 2 {
		t.Fatalf("applyBatches = %d, %v; want 2, 2", txs, mean)
	}
}

func TestServersPercent(t *testing.T) {
	t.Parallel()
	before := map[int]serverTicks{
		10: {"postgres", 500}, 11: {"postgres", 100}, 20: {"rabbitmq", 1000},
		30: {"postgres", 900}, // exits: not counted
	}
	after := map[int]serverTicks{
		10: {"postgres", 700},  // +200
		11: {"postgres", 150},  // +50
		12: {"postgres", 50},   // started meanwhile: +50
		20: {"rabbitmq", 1100}, // +100
		40: {"rabbitmq", 10},   // a reused pid below: counts from zero
	}
	before[40] = serverTicks{"postgres", 5000}
	got := serversPercent(before, after, 2*time.Second)
	// 300 ticks of postgres over 2 s = 150% of a core; 110 of rabbitmq = 55%.
	if got["postgres"] != 150 || got["rabbitmq"] != 55 || len(got) != 2 {
		t.Fatalf("serversPercent = %v, want postgres 150, rabbitmq 55", got)
	}
	if serversPercent(before, nil, time.Second) != nil {
		t.Fatal("without a second reading there is no figure")
	}
}

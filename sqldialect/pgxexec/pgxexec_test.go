package pgxexec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxexec"
)

var (
	_ pgxexec.Querier = (*pgxpool.Pool)(nil)
	_ pgxexec.Querier = (*pgxpool.Conn)(nil)
	_ pgxexec.Querier = (*pgx.Conn)(nil)
	_ pgxexec.Querier = pgx.Tx(nil)
)

// newSchema creates an empty schema for one test on the real server,
// dropped (CASCADE) when the test ends, and returns a connection config
// whose sessions have only that schema on their search_path.
func newSchema(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(cqrsynctesting.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newPool opens a pgx pool on cfg's database and schema, closed when the
// test ends (before its schema is dropped).
func newPool(t *testing.T, cfg *pgx.ConnConfig) *pgxpool.Pool {
	t.Helper()
	pcfg, err := pgxpool.ParseConfig("")
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig = cfg
	pool, err := pgxpool.NewWithConfig(t.Context(), pcfg)
	if err != nil {
		t.Fatalf("pgxpool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

type testBundle struct {
	ctx  context.Context
	d    sqldialect.Dialect
	pool *pgxpool.Pool
	ex   sqldialect.Executor
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := newPool(t, newSchema(t))
	b := &testBundle{ctx: t.Context(), d: sqldialect.Postgres(), pool: pool, ex: pgxexec.New(pool)}
	// Migrate sends a multi-statement query: pgx's simple protocol.
	if err := b.d.Migrate(b.ctx, b.ex); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if _, err := pool.Exec(b.ctx, `CREATE TABLE item (
		id bigint PRIMARY KEY, name text NOT NULL,
		cqrs_revision integer NOT NULL DEFAULT 0, cqrs_updated timestamptz)`); err != nil {
		t.Fatal(err)
	}
	return b
}

// The dialect's statements run through the adapter on a pool and inside a
// pgx.Tx (a focused run; the conformance suite itself takes a *sql.DB).
func TestDialect(t *testing.T) {
	t.Parallel()

	t.Run("Pool", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		exerciseDialect(t, b.ctx, b.d, b.ex)
	})

	t.Run("Tx", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tx, err := b.pool.Begin(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(context.Background()) }()
		exerciseDialect(t, b.ctx, b.d, pgxexec.New(tx))
		if err := tx.Rollback(b.ctx); err != nil {
			t.Fatal(err)
		}
		// Everything ran in the transaction: the rollback undid it.
		st, err := b.d.OutboxStats(b.ctx, b.ex)
		if err != nil || st.Rows != 0 {
			t.Fatalf("OutboxStats after rollback = %+v, %v; want 0 rows", st, err)
		}
	})
}

func exerciseDialect(t *testing.T, ctx context.Context, d sqldialect.Dialect, ex sqldialect.Executor) {
	t.Helper()
	cols, err := d.TableColumns(ctx, ex, "item")
	if err != nil || len(cols) != 4 || !cols[0].PrimaryKey || cols[3].DeclaredType != "timestamp with time zone" {
		t.Fatalf("TableColumns = %+v, %v", cols, err)
	}

	// Outbox: bytes exact, claimed once, deleted.
	now := time.Now().UTC().Truncate(time.Microsecond)
	body := []byte("{\"x\":\"\u00e9\x00\"}")
	if err := d.InsertOutbox(ctx, ex, []sqldialect.OutboxRow{
		{CQRSID: "item", Body: body, CreatedAt: now},
		{CQRSID: "item", Queue: "q", Body: []byte("2"), CreatedAt: now.Add(time.Second)},
	}); err != nil {
		t.Fatalf("InsertOutbox: %v", err)
	}
	claim := func(limit int) []sqldialect.OutboxRow {
		t.Helper()
		rows, err := d.ClaimOutbox(ctx, ex, &sqldialect.ClaimOutboxParams{Limit: limit, Now: now, LeaseUntil: now.Add(time.Minute)})
		if err != nil {
			t.Fatalf("ClaimOutbox: %v", err)
		}
		return rows
	}
	got := claim(1)
	if len(got) != 1 || string(got[0].Body) != string(body) || !got[0].CreatedAt.Equal(now) || got[0].Queue != "" {
		t.Fatalf("ClaimOutbox = %+v", got)
	}
	if again := claim(5); len(again) != 1 || again[0].Queue != "q" {
		t.Fatalf("second ClaimOutbox = %+v; want the row of queue q", again)
	}
	if err := d.ReleaseOutbox(ctx, ex, []int64{got[0].ID}); err != nil {
		t.Fatal(err)
	}
	if again := claim(5); len(again) != 1 || again[0].ID != got[0].ID {
		t.Fatalf("ClaimOutbox after release = %+v", again)
	}
	if err := d.DeleteOutbox(ctx, ex, []int64{got[0].ID}); err != nil {
		t.Fatal(err)
	}
	if st, err := d.OutboxStats(ctx, ex); err != nil || st.Rows != 1 || !st.Oldest.Equal(now.Add(time.Second)) {
		t.Fatalf("OutboxStats = %+v, %v", st, err)
	}

	// Replica writes: guarded upsert, guarded delete, tombstone.
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	upsert := func(rev int64, name string, updated time.Time) int64 {
		t.Helper()
		n, err := d.Upsert(ctx, ex, &sqldialect.UpsertParams{
			Table: "item", PKColumn: "id", Columns: []string{"id", "name", "cqrs_revision", "cqrs_updated"},
			Values: []any{int64(1), name, rev, updated}, Revision: rev, CQRSID: "item", Key: "1", Updated: updated,
		})
		if err != nil {
			t.Fatalf("Upsert: %v", err)
		}
		return n
	}
	if upsert(1, "a", t0) != 1 || upsert(1, "dup", t0) != 0 || upsert(2, "b", t0.Add(time.Second)) != 1 {
		t.Fatal("Upsert guard: want create, duplicate dropped, newer written")
	}
	rows, err := d.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{Table: "item", PKColumn: "id", Columns: []string{"name", "cqrs_revision", "cqrs_updated"}, PKs: []any{int64(1)}, ForUpdate: true})
	if err != nil {
		t.Fatalf("SelectRows: %v", err)
	}
	names, err := rows.Columns()
	if err != nil || fmt.Sprint(names) != "[name cqrs_revision cqrs_updated]" {
		t.Fatalf("Columns = %v, %v", names, err)
	}
	var name string
	var rev int64
	var updated time.Time
	if !rows.Next() {
		t.Fatalf("SelectRows: no row (%v)", rows.Err())
	}
	if err := rows.Scan(&name, &rev, &updated); err != nil || name != "b" || rev != 2 || !updated.Equal(t0.Add(time.Second)) {
		t.Fatalf("row = %q, %d, %v, %v", name, rev, updated, err)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := d.DeleteGuarded(ctx, ex, &sqldialect.DeleteGuardedParams{
		Table: "item", PKColumn: "id", PK: int64(1), Revision: 3,
		CQRSID: "item", Key: "1", Updated: t0.Add(2 * time.Second), Now: t0,
	})
	if err != nil || n != 1 {
		t.Fatalf("DeleteGuarded = %d, %v", n, err)
	}
	if upsert(2, "late", t0.Add(time.Second)) != 0 {
		t.Fatal("a late SAVE passed the tombstone")
	}

	// Master rows: a re-created key continues after its tombstone.
	if _, err := ex.Exec(ctx, "INSERT INTO item (id, name) VALUES (1, 'again'), (2, 'other')"); err != nil {
		t.Fatal(err)
	}
	if n, err := d.TouchRows(ctx, ex, &sqldialect.TouchRowsParams{CQRSID: "item", Table: "item", PKColumn: "id", PKs: []any{int64(1), int64(2)}, Updated: t0, Reset: true}); err != nil || n != 2 {
		t.Fatalf("TouchRows = %d, %v", n, err)
	}
	rows, err = d.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{Table: "item", PKColumn: "id", Columns: []string{"id", "cqrs_revision"}, After: int64(0), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var page []string
	for rows.Next() {
		var id, rev int64
		if err := rows.Scan(&id, &rev); err != nil {
			t.Fatal(err)
		}
		page = append(page, fmt.Sprintf("%d@%d", id, rev))
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(page) != "[1@4 2@0]" {
		t.Fatalf("keyset page = %v; want [1@4 2@0] (1 continues after its tombstone at 3)", page)
	}
	if n, err := d.DeleteRows(ctx, ex, "item", "id", []any{int64(2), int64(9)}); err != nil || n != 1 {
		t.Fatalf("DeleteRows = %d, %v", n, err)
	}
	if n, err := d.PurgeTombstones(ctx, ex, t0.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("PurgeTombstones = %d, %v", n, err)
	}
}

// A failed statement surfaces from Query, Next/Err or Close, and Close
// returns it.
func TestRowsError(t *testing.T) {
	t.Parallel()
	pool := newPool(t, newSchema(t))
	ex := pgxexec.New(pool)
	rows, err := ex.Query(t.Context(), "SELECT 1 / (x - 1) FROM generate_series(1, 3) x")
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	for rows.Next() {
		var v any
		_ = rows.Scan(&v)
	}
	if rows.Err() == nil {
		t.Fatal("Err = nil after a division by zero")
	}
	if err := rows.Close(); err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("Close = %v; want the division by zero", err)
	}
	if _, err := ex.Exec(t.Context(), "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("Exec on a missing table: no error")
	}
	if _, err := sqldialect.Postgres().TableColumns(t.Context(), ex, "no_such_table"); !errors.Is(err, sqldialect.ErrNoTable) {
		t.Fatalf("TableColumns = %v; want ErrNoTable", err)
	}
}

// json and jsonb scanned into *any come back as their JSON text; other
// destinations and other columns are pgx's.
func TestScanJSON(t *testing.T) {
	t.Parallel()
	pool := newPool(t, newSchema(t))
	ex := pgxexec.New(pool)
	rows, err := ex.Query(t.Context(), `SELECT x, '{"b": 1, "a": 1.50}'::json, '{"bb": 12345678901234567890, "a": "s"}'::jsonb,
		'"s"'::jsonb, NULL::jsonb, 'null'::jsonb, '{"x": 1}'::jsonb FROM generate_series(1, 2) x`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got [][]any
	for rows.Next() {
		var n, j, jb, str, null, jnull any
		var typed map[string]int
		if err := rows.Scan(&n, &j, &jb, &str, &null, &jnull, &typed); err != nil {
			t.Fatal(err)
		}
		got = append(got, []any{n, j, jb, str, null, jnull, typed})
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for i, g := range got { // the first row's values survive the second scan
		want := []any{int32(i + 1), json.RawMessage(`{"b": 1, "a": 1.50}`), json.RawMessage(`{"a": "s", "bb": 12345678901234567890}`),
			json.RawMessage(`"s"`), nil, json.RawMessage(`null`), map[string]int{"x": 1}}
		if fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", want) {
			t.Errorf("row %d scanned\n %#v\nwant\n %#v", i+1, g, want)
		}
	}
	if len(got) != 2 {
		t.Fatalf("read %d rows, want 2", len(got))
	}
}

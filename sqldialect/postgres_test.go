package sqldialect_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/sqldialect/sqldialecttest"
)

func TestPostgres(t *testing.T) {
	t.Parallel()
	sqldialecttest.Run(t, &sqldialecttest.Harness{
		NewDriver: func(t *testing.T) sqldialect.DB {
			t.Helper()
			return databasesql.New(openPG(t, newPGSchema(t)), sqldialect.Postgres())
		},
		TimestampType: "TIMESTAMPTZ",
		BinaryTypes:   []sqldialecttest.SizedType{{Type: "BYTEA"}},
	})
}

// newPGSchema creates an empty schema for one test on the real server,
// dropped (CASCADE) when the test ends, and returns a connection config
// whose sessions have only that schema on their search_path.
func newPGSchema(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(cqrsynctesting.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// openPG opens a database/sql handle through the pgx stdlib driver, closed
// when the test ends (before its schema is dropped).
func openPG(t *testing.T, cfg *pgx.ConnConfig) *sql.DB {
	t.Helper()
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// pgBundle is a migrated schema with outbox rows.
type pgBundle struct {
	ctx context.Context
	d   sqldialect.Dialect
	db  *sql.DB
}

func setupPG(t *testing.T, outboxRows int) *pgBundle {
	t.Helper()
	b := &pgBundle{ctx: t.Context(), d: sqldialect.Postgres(), db: openPG(t, newPGSchema(t))}
	if err := b.d.Migrate(b.ctx, sqldialect.FromSQL(b.db)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	rows := make([]sqldialect.OutboxRow, outboxRows)
	for i := range rows {
		rows[i] = sqldialect.OutboxRow{CQRSID: "item", Body: []byte(fmt.Sprint(i)), CreatedAt: time.Now()}
	}
	if err := b.d.InsertOutbox(b.ctx, sqldialect.FromSQL(b.db), rows); err != nil {
		t.Fatalf("InsertOutbox: %v", err)
	}
	return b
}

func (b *pgBundle) conn(t *testing.T) *sql.Conn {
	t.Helper()
	c, err := b.db.Conn(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func claimIDs(ctx context.Context, d sqldialect.Dialect, ex sqldialect.Executor, limit int) ([]int64, error) {
	now := time.Now()
	rows, err := d.ClaimOutbox(ctx, ex, &sqldialect.ClaimOutboxParams{Limit: limit, Now: now, LeaseUntil: now.Add(time.Hour)})
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, err
}

// Two relays on two connections claim 1000 rows in small batches, each
// batch in a transaction that keeps its rows locked until commit: between
// them they claim every row exactly once.
func TestPostgresClaimOutboxConcurrent(t *testing.T) {
	t.Parallel()
	const total, batch = 1000, 7
	b := setupPG(t, total)

	start := make(chan struct{})
	claimed := make([][]int64, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		c := b.conn(t)
		wg.Go(func() {
			<-start
			for {
				tx, err := c.BeginTx(b.ctx, nil)
				if err != nil {
					errs[w] = err
					return
				}
				ids, err := claimIDs(b.ctx, b.d, sqldialect.FromSQL(tx), batch)
				if err == nil {
					err = tx.Commit()
				} else {
					_ = tx.Rollback()
				}
				if err != nil {
					errs[w] = err
					return
				}
				if len(ids) == 0 {
					return
				}
				claimed[w] = append(claimed[w], ids...)
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("ClaimOutbox: %v", err)
	}
	all := slices.Concat(claimed[0], claimed[1])
	slices.Sort(all)
	if n := len(slices.Compact(slices.Clone(all))); n != len(all) {
		t.Fatalf("%d rows claimed twice", len(all)-n)
	}
	if len(all) != total {
		t.Fatalf("claimed %d rows, want %d", len(all), total)
	}
	t.Logf("relay 0 claimed %d rows, relay 1 claimed %d", len(claimed[0]), len(claimed[1]))
}

// A relay whose claim is not yet committed holds row locks; another relay
// skips those rows instead of waiting, and gets them once the first rolls
// back.
func TestPostgresClaimOutboxSkipsLocked(t *testing.T) {
	t.Parallel()
	b := setupPG(t, 30)
	a, other := b.conn(t), b.conn(t)

	txA, err := a.BeginTx(b.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = txA.Rollback() }()
	held, err := claimIDs(b.ctx, b.d, sqldialect.FromSQL(txA), 10)
	if err != nil || len(held) != 10 {
		t.Fatalf("claim in open tx = %v, %v; want 10 rows", held, err)
	}

	// Were the claim waiting on A's locks, it would hit this deadline.
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	got, err := claimIDs(ctx, b.d, sqldialect.FromSQL(other), 10)
	if err != nil {
		t.Fatalf("claim beside an open claim: %v (blocked on its locks?)", err)
	}
	if len(got) != 10 || got[0] <= held[len(held)-1] {
		t.Fatalf("claim beside an open claim = %v; want the 10 rows after %v", got, held)
	}

	if err := txA.Rollback(); err != nil {
		t.Fatal(err)
	}
	rest, err := claimIDs(b.ctx, b.d, sqldialect.FromSQL(other), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 20 || !slices.Equal(rest[:10], held) || rest[10] <= got[len(got)-1] {
		t.Fatalf("claim after rollback = %v; want the rolled-back rows %v and the last 10", rest, held)
	}
}

// Concurrent Migrates on an empty schema all succeed (without the advisory
// lock, CREATE TABLE IF NOT EXISTS races and fails with a duplicate key).
func TestPostgresMigrateConcurrent(t *testing.T) {
	t.Parallel()
	const n = 8
	db := openPG(t, newPGSchema(t))
	d := sqldialect.Postgres()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c, err := db.Conn(t.Context()) // n distinct sessions, connected before the start
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			<-start
			errs[i] = d.Migrate(t.Context(), sqldialect.FromSQL(c))
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	if _, err := d.TableColumns(t.Context(), sqldialect.FromSQL(db), "cqrs_outbox"); err != nil {
		t.Fatal(err)
	}
}

// Migrate inside the caller's transaction is part of it.
func TestPostgresMigrateInTx(t *testing.T) {
	t.Parallel()
	db := openPG(t, newPGSchema(t))
	d := sqldialect.Postgres()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Migrate(t.Context(), sqldialect.FromSQL(tx)); err != nil {
		t.Fatalf("Migrate in tx: %v", err)
	}
	if _, err := d.TableColumns(t.Context(), sqldialect.FromSQL(tx), "cqrs_tombstones"); err != nil {
		t.Fatalf("TableColumns in tx: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.TableColumns(t.Context(), sqldialect.FromSQL(db), "cqrs_tombstones"); !errors.Is(err, sqldialect.ErrNoTable) {
		t.Fatalf("TableColumns after rollback = %v; want ErrNoTable", err)
	}
}

func TestPostgresTableColumns(t *testing.T) {
	t.Parallel()
	cfg := newPGSchema(t)
	schema := cfg.RuntimeParams["search_path"]
	far := newPGSchema(t) // a second schema, later on the search_path
	cfg.RuntimeParams["search_path"] = schema + ", " + far.RuntimeParams["search_path"]
	db := openPG(t, cfg)
	ctx := t.Context()
	for _, stmt := range []string{
		"CREATE DOMAIN money2 AS numeric(12,2)",
		`CREATE TABLE "Typed" (
			id       bigserial PRIMARY KEY,
			n        integer NOT NULL DEFAULT 0,
			s        smallint,
			dec      numeric(14,4),
			num      numeric,
			r        real,
			f        double precision,
			ok       boolean,
			v        varchar(200),
			c        char(36),
			t        text,
			d        date,
			ts       timestamp,
			tstz     timestamptz(3),
			u        uuid NOT NULL,
			j        json,
			jb       jsonb,
			b        bytea,
			arr      integer[],
			m        money2,
			ident    int GENERATED ALWAYS AS IDENTITY,
			gen      bigint GENERATED ALWAYS AS (n * 2) STORED,
			dropped  int
		)`,
		`ALTER TABLE "Typed" DROP COLUMN dropped`,
		"CREATE TABLE " + far.RuntimeParams["search_path"] + ".far (k text, a int, PRIMARY KEY (a, k))",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	d := sqldialect.Postgres()
	cols, err := d.TableColumns(ctx, sqldialect.FromSQL(db), "Typed")
	if err != nil {
		t.Fatalf("TableColumns: %v", err)
	}
	want := []sqldialect.Column{
		{Name: "id", DeclaredType: "bigint", HasDefault: true, PrimaryKey: true},
		{Name: "n", DeclaredType: "integer", HasDefault: true},
		{Name: "s", DeclaredType: "smallint", Nullable: true},
		{Name: "dec", DeclaredType: "numeric(14,4)", Nullable: true},
		{Name: "num", DeclaredType: "numeric", Nullable: true},
		{Name: "r", DeclaredType: "real", Nullable: true},
		{Name: "f", DeclaredType: "double precision", Nullable: true},
		{Name: "ok", DeclaredType: "boolean", Nullable: true},
		{Name: "v", DeclaredType: "character varying(200)", Nullable: true},
		{Name: "c", DeclaredType: "character(36)", Nullable: true},
		{Name: "t", DeclaredType: "text", Nullable: true},
		{Name: "d", DeclaredType: "date", Nullable: true},
		{Name: "ts", DeclaredType: "timestamp without time zone", Nullable: true},
		{Name: "tstz", DeclaredType: "timestamp(3) with time zone", Nullable: true},
		{Name: "u", DeclaredType: "uuid"},
		{Name: "j", DeclaredType: "json", Nullable: true},
		{Name: "jb", DeclaredType: "jsonb", Nullable: true},
		{Name: "b", DeclaredType: "bytea", Nullable: true},
		{Name: "arr", DeclaredType: "integer[]", Nullable: true},
		{Name: "m", DeclaredType: "numeric(12,2)", Nullable: true},
		{Name: "ident", DeclaredType: "integer", HasDefault: true},
		{Name: "gen", DeclaredType: "bigint", Nullable: true, HasDefault: true},
	}
	if !slices.Equal(cols, want) {
		t.Errorf("TableColumns(Typed):\n got %+v\nwant %+v", cols, want)
	}

	// A table further on the search_path is found, as an unqualified
	// statement would find it; PrimaryKey marks the first key column.
	cols, err = d.TableColumns(ctx, sqldialect.FromSQL(db), "far")
	if err != nil {
		t.Fatalf("TableColumns(far): %v", err)
	}
	if len(cols) != 2 || cols[0].PrimaryKey || !cols[1].PrimaryKey {
		t.Errorf("TableColumns(far) = %+v; want k, then a as the primary key", cols)
	}
	// Names are identifiers, not expressions; other relation kinds are not
	// tables.
	for _, name := range []string{"typed", "no_such_table", `"Typed"`, "Typed_id_seq", "Typed_pkey"} {
		if _, err := d.TableColumns(ctx, sqldialect.FromSQL(db), name); !errors.Is(err, sqldialect.ErrNoTable) {
			t.Errorf("TableColumns(%s) = %v; want ErrNoTable", name, err)
		}
	}
}

// TestPostgresLockKeysBounded: a bulk batch's keys are locked with a
// bounded number of locks (one per key would exhaust the shared lock
// table), and it still excludes a transaction on one of its keys.
func TestPostgresLockKeysBounded(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenPostgres(t)
	ctx := t.Context()
	keys := make([]string, 50000)
	for i := range keys {
		keys[i] = fmt.Sprintf("item\x1f%d", i)
	}
	bulk, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bulk.Rollback() //nolint:errcheck // test cleanup
	if err := sqldialect.Postgres().LockKeys(ctx, sqldialect.FromSQL(bulk), keys); err != nil {
		t.Fatalf("LockKeys of 50000 keys: %v", err)
	}
	// A small batch on one of those keys must wait for the bulk one.
	small, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Rollback() //nolint:errcheck // test cleanup
	waitCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := sqldialect.Postgres().LockKeys(waitCtx, sqldialect.FromSQL(small), []string{keys[123]}); err == nil || waitCtx.Err() == nil {
		t.Fatalf("a small batch on a key a bulk batch holds: %v, want it to wait until its deadline", err)
	}
}

// lockLogger runs the dialect's statements with the advisory lock
// functions replaced by ones that log each call in order, so a test can
// see the order in which LockKeys takes its locks.
type lockLogger struct{ sqldialect.Executor }

func (l lockLogger) rewrite(q string) string {
	q = strings.ReplaceAll(q, "pg_advisory_xact_lock_shared(", "log_lock_shared(")
	return strings.ReplaceAll(q, "pg_advisory_xact_lock(", "log_lock(")
}

func (l lockLogger) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	return l.Executor.Exec(ctx, l.rewrite(q), args...)
}

func (l lockLogger) Query(ctx context.Context, q string, args ...any) (sqldialect.Rows, error) {
	return l.Executor.Query(ctx, l.rewrite(q), args...)
}

// TestPostgresLockKeysOrder: LockKeys takes every bucket before any key,
// and each level in ascending order, small batch or bulk, so that two
// transactions never wait for each other in a cycle.
func TestPostgresLockKeysOrder(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenPostgres(t,
		`CREATE TABLE lock_log (n serial PRIMARY KEY, level int NOT NULL, h bigint NOT NULL)`,
		`CREATE FUNCTION log_lock(h bigint) RETURNS void LANGUAGE sql AS $$ INSERT INTO lock_log (level, h) VALUES (1, h) $$`,
		`CREATE FUNCTION log_lock(a int, h int) RETURNS void LANGUAGE sql AS $$ INSERT INTO lock_log (level, h) VALUES (0, h) $$`,
		`CREATE FUNCTION log_lock_shared(a int, h int) RETURNS void LANGUAGE sql AS $$ INSERT INTO lock_log (level, h) VALUES (0, h) $$`)
	ctx := t.Context()
	for _, n := range []int{40, 1500} { // fine (buckets and keys), bulk (buckets only)
		if _, err := db.ExecContext(ctx, "TRUNCATE lock_log RESTART IDENTITY"); err != nil {
			t.Fatal(err)
		}
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("item\x1f%d", i)
		}
		if err := sqldialect.Postgres().LockKeys(ctx, lockLogger{sqldialect.FromSQL(db)}, keys); err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, "SELECT level, h FROM lock_log ORDER BY n")
		if err != nil {
			t.Fatal(err)
		}
		type lock struct {
			level int
			h     int64
		}
		var got []lock
		for rows.Next() {
			var l lock
			if err := rows.Scan(&l.level, &l.h); err != nil {
				t.Fatal(err)
			}
			got = append(got, l)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatalf("%d keys: no lock taken", n)
		}
		sorted := slices.IsSortedFunc(got, func(a, b lock) int {
			if a.level != b.level {
				return a.level - b.level
			}
			return cmp.Compare(a.h, b.h)
		})
		if !sorted {
			t.Fatalf("%d keys: locks taken in the order %v, want buckets then keys, each ascending", n, got)
		}
		if n > 1000 && got[len(got)-1].level != 0 {
			t.Fatalf("%d keys (bulk): a key lock was taken; want buckets only", n)
		}
	}
}

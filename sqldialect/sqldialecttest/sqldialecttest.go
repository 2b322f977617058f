// Package sqldialecttest is the conformance suite every driver and
// [sqldialect.Dialect] passes against its real database. A driver's test
// calls [Run] with a [Harness] that opens an isolated, empty database (or
// schema) per test, through that driver.
package sqldialecttest

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// Harness connects the suite to a database.
type Harness struct {
	// NewDriver returns the driver under test on an isolated, empty
	// database or schema; the harness cleans it up with t.Cleanup. The
	// suite tests the driver's dialect through it.
	NewDriver func(t *testing.T) sqldialect.DB
	// TimestampType is the column type the suite uses for cqrs_updated
	// (e.g. "TIMESTAMP", "DATETIME(6)", "TIMESTAMPTZ"). Default "TIMESTAMP".
	TimestampType string
	// TextTypes are the column types the LongValues test stores long
	// strings in, each with the most bytes a value may have. Default: TEXT
	// without a limit.
	TextTypes []SizedType
	// BinaryTypes are the column types the LongValues test stores byte
	// strings ([]byte values) in; none by default.
	BinaryTypes []SizedType
}

// SizedType is a column type and the most bytes a value of it may have; 0
// means no limit the suite reaches (it writes values of up to 1 MiB).
type SizedType struct {
	Type     string
	MaxBytes int
}

// bundle is what one test works with.
type bundle struct {
	ctx context.Context
	d   sqldialect.Dialect
	drv sqldialect.DB
	ex  sqldialect.Executor
	// uniqueKeys is the UniqueKeys of the bundle's upserts: whether
	// TableColumns reports a unique key besides item's primary key (see
	// setupUnique).
	uniqueKeys bool
}

func setup(t *testing.T, h *Harness) *bundle {
	t.Helper()
	drv := h.NewDriver(t)
	b := &bundle{ctx: t.Context(), d: drv.Dialect(), drv: drv, ex: drv.Pool()}
	if err := b.d.Migrate(b.ctx, b.ex); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	ts := h.TimestampType
	if ts == "" {
		ts = "TIMESTAMP"
	}
	ddl := fmt.Sprintf(`CREATE TABLE %s (
		%s BIGINT NOT NULL PRIMARY KEY,
		%s VARCHAR(100) NOT NULL,
		%s VARCHAR(100) NULL,
		%s INTEGER NOT NULL DEFAULT 0,
		%s %s NULL)`,
		b.d.QuoteIdent("item"), b.d.QuoteIdent("id"), b.d.QuoteIdent("name"), b.d.QuoteIdent("note"),
		b.d.QuoteIdent("cqrs_revision"), b.d.QuoteIdent("cqrs_updated"), ts)
	b.exec(t, ddl)
	return b
}

// setupWith is setup, and with unique, setupUnique.
func setupWith(t *testing.T, h *Harness, unique bool) *bundle {
	t.Helper()
	if unique {
		return setupUnique(t, h)
	}
	return setup(t, h)
}

// setupUnique is setup with a unique index on item's name, and the
// bundle's upserts told about it as a replica tells them: from
// TableColumns.
func setupUnique(t *testing.T, h *Harness) *bundle {
	t.Helper()
	b := setup(t, h)
	b.exec(t, fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s (%s)", b.d.QuoteIdent("item_name"), b.d.QuoteIdent("item"), b.d.QuoteIdent("name")))
	cols, err := b.d.TableColumns(b.ctx, b.ex, "item")
	if err != nil {
		t.Fatalf("TableColumns: %v", err)
	}
	b.uniqueKeys = slices.ContainsFunc(cols, func(c sqldialect.Column) bool { return c.Unique })
	return b
}

func (b *bundle) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := b.ex.Exec(b.ctx, q, args...); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

// queryRow runs a query of at most one row and scans it into dest; it
// returns sql.ErrNoRows when there is none.
func queryRow(ctx context.Context, ex sqldialect.Executor, dest []any, q string, args ...any) error {
	rows, err := ex.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// row is the replica test row's state.
type row struct {
	name     string
	revision int64
}

func (b *bundle) get(t *testing.T, id int64) (row, bool) {
	t.Helper()
	rows, err := b.d.SelectRows(b.ctx, b.ex, &sqldialect.SelectRowsParams{
		Table: "item", PKColumn: "id", Columns: []string{"name", "cqrs_revision"}, PKs: []any{id},
	})
	if err != nil {
		t.Fatalf("SelectRows: %v", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			t.Fatalf("SelectRows: %v", err)
		}
		return row{}, false
	}
	var r row
	if err := rows.Scan(&r.name, &r.revision); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return r, true
}

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

func (b *bundle) upsert(t *testing.T, id int64, name string, rev int64, updated time.Time, guard sqldialect.Guard) int64 {
	t.Helper()
	n, err := b.d.Upsert(b.ctx, b.ex, &sqldialect.UpsertParams{
		Table: "item", PKColumn: "id",
		Columns:  []string{"id", "name", "cqrs_revision", "cqrs_updated"},
		Values:   []any{id, name, rev, updated},
		Revision: rev, Guard: guard,
		CQRSID: "item", Key: fmt.Sprint(id), Updated: updated, UniqueKeys: b.uniqueKeys,
	})
	if err != nil {
		t.Fatalf("Upsert(%d, %q, rev %d, %v): %v", id, name, rev, guard, err)
	}
	return n
}

func (b *bundle) delete(t *testing.T, id, rev int64, updated time.Time) int64 {
	t.Helper()
	n, err := b.d.DeleteGuarded(b.ctx, b.ex, &sqldialect.DeleteGuardedParams{
		Table: "item", PKColumn: "id", PK: id, Revision: rev,
		CQRSID: "item", Key: fmt.Sprint(id), Updated: updated, Now: time.Now(),
	})
	if err != nil {
		t.Fatalf("DeleteGuarded(%d, rev %d): %v", id, rev, err)
	}
	return n
}

func (b *bundle) want(t *testing.T, id int64, name string, rev int64) {
	t.Helper()
	got, ok := b.get(t, id)
	if !ok {
		t.Fatalf("row %d missing, want %q at revision %d", id, name, rev)
	}
	if got.name != name || got.revision != rev {
		t.Fatalf("row %d = %q at revision %d, want %q at revision %d", id, got.name, got.revision, name, rev)
	}
}

func (b *bundle) wantGone(t *testing.T, id int64) {
	t.Helper()
	if got, ok := b.get(t, id); ok {
		t.Fatalf("row %d = %q at revision %d, want no row", id, got.name, got.revision)
	}
}

// Run runs the whole suite.
func Run(t *testing.T, h *Harness) {
	t.Helper()
	t.Run("Migrate", func(t *testing.T) { t.Parallel(); testMigrate(t, h) })
	t.Run("MigrateUpgrade", func(t *testing.T) { t.Parallel(); testMigrateUpgrade(t, h) })
	t.Run("TableColumns", func(t *testing.T) { t.Parallel(); testTableColumns(t, h) })
	t.Run("Outbox", func(t *testing.T) { t.Parallel(); testOutbox(t, h) })
	t.Run("MasterRows", func(t *testing.T) { t.Parallel(); testMasterRows(t, h) })
	t.Run("Conds", func(t *testing.T) { t.Parallel(); testConds(t, h) })
	t.Run("AddVersionColumns", func(t *testing.T) { t.Parallel(); testAddVersionColumns(t, h) })
	t.Run("InsertRow", func(t *testing.T) { t.Parallel(); testInsertRow(t, h) })
	t.Run("Upsert", func(t *testing.T) { t.Parallel(); testUpsert(t, setup(t, h)) })
	t.Run("DeleteAndTombstones", func(t *testing.T) { t.Parallel(); testDelete(t, h) })
	t.Run("DeleteGuardedBatch", func(t *testing.T) { t.Parallel(); testDeleteBatch(t, h) })
	t.Run("UpsertBatch", func(t *testing.T) { t.Parallel(); testUpsertBatch(t, setup(t, h)) })
	t.Run("ReCreatedKey", func(t *testing.T) { t.Parallel(); testReCreatedKey(t, h, false) })
	// The same rules on a table with a unique key besides the primary key
	// (item's names are distinct in these tests), which MySQL writes
	// without ON DUPLICATE KEY UPDATE.
	t.Run("Upsert/UniqueKey", func(t *testing.T) { t.Parallel(); testUpsert(t, setupUnique(t, h)) })
	t.Run("UpsertBatch/UniqueKey", func(t *testing.T) { t.Parallel(); testUpsertBatch(t, setupUnique(t, h)) })
	t.Run("ReCreatedKey/UniqueKey", func(t *testing.T) { t.Parallel(); testReCreatedKey(t, h, true) })
	t.Run("SecondaryUniqueKey", func(t *testing.T) { t.Parallel(); testSecondaryUniqueKey(t, h) })
	t.Run("LongValues", func(t *testing.T) { t.Parallel(); RunLongValues(t, h) })
	t.Run("LongValues/UniqueKey", func(t *testing.T) { t.Parallel(); runLongValues(t, h, true) })
	t.Run("RunTx", func(t *testing.T) { t.Parallel(); testRunTx(t, h) })
	t.Run("KeyVersion", func(t *testing.T) { t.Parallel(); testKeyVersion(t, h) })
}

// testRunTx checks the driver's transactions: RunTx commits what fn wrote
// when fn succeeds and rolls all of it back when fn fails, and the
// Executor it passes is a Deferrer exactly when Features().Pipeline says
// so, with deferred statements committed too.
func testRunTx(t *testing.T, h *Harness) {
	b := setup(t, h)
	ins := fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, %s)", b.d.QuoteIdent("item"),
		b.d.QuoteIdent("id"), b.d.QuoteIdent("name"), b.d.Placeholder(1), b.d.Placeholder(2))
	pipelined := b.drv.Features().Pipeline
	err := b.drv.RunTx(b.ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		d, ok := ex.(sqldialect.Deferrer)
		if ok != pipelined {
			t.Errorf("RunTx's Executor implements Deferrer: %v; Features().Pipeline = %v", ok, pipelined)
		}
		if ok {
			d.Defer(ctx, ins, int64(1), "deferred")
		} else if _, err := ex.Exec(ctx, ins, int64(1), "deferred"); err != nil {
			return err
		}
		_, err := ex.Exec(ctx, ins, int64(2), "two")
		return err
	})
	if err != nil {
		t.Fatalf("RunTx: %v", err)
	}
	b.want(t, 1, "deferred", 0)
	b.want(t, 2, "two", 0)

	failed := errors.New("fn failed")
	err = b.drv.RunTx(b.ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		if _, err := ex.Exec(ctx, ins, int64(3), "three"); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("RunTx of a failing fn = %v, want its error", err)
	}
	b.wantGone(t, 3)

	// A failed statement fails the transaction, and the pool is usable
	// after it.
	err = b.drv.RunTx(b.ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		_, err := ex.Exec(ctx, ins, int64(1), "duplicate key")
		return err
	})
	if err == nil {
		t.Fatal("RunTx inserting a duplicate key succeeded")
	}
	b.want(t, 1, "deferred", 0)
}

func testMigrate(t *testing.T, h *Harness) {
	b := setup(t, h)
	// setup migrated once; a second run must be a no-op.
	if err := b.d.Migrate(b.ctx, b.ex); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if b.d.MigrationSQL() == "" {
		t.Fatal("MigrationSQL is empty")
	}
	// The columns a schema check expects are those the migration creates.
	for table, want := range sqldialect.MigrationColumns(b.d) {
		cols, err := b.d.TableColumns(b.ctx, b.ex, table)
		if err != nil {
			t.Fatalf("TableColumns(%s): %v", table, err)
		}
		var got []string
		for _, c := range cols {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("table %s has columns %v after Migrate; MigrationColumns says %v: update one or the other", table, got, want)
		}
	}
}

// testMigrateUpgrade runs Migrate on a version-1 install (cqrs_outbox
// without the headers column, holding an event): it adds the column, keeps
// the event, and a second run changes nothing.
func testMigrateUpgrade(t *testing.T, h *Harness) {
	b := setup(t, h)
	if !strings.Contains(b.d.MigrationSQL(), "headers") {
		t.Fatal("MigrationSQL does not show the headers column")
	}
	b.exec(t, "ALTER TABLE cqrs_outbox DROP COLUMN headers") // back to version 1
	b.exec(t, "INSERT INTO cqrs_outbox (cqrs_id, queue, body, created_us) VALUES ('item', '', 'old', 1)")
	for run := 1; run <= 2; run++ {
		if err := b.d.Migrate(b.ctx, b.ex); err != nil {
			t.Fatalf("Migrate run %d on a version-1 outbox: %v", run, err)
		}
	}
	cols, err := b.d.TableColumns(b.ctx, b.ex, "cqrs_outbox")
	if err != nil {
		t.Fatalf("TableColumns: %v", err)
	}
	if !slices.ContainsFunc(cols, func(c sqldialect.Column) bool { return c.Name == "headers" }) {
		t.Fatalf("cqrs_outbox columns after Migrate = %+v; want headers", cols)
	}
	rows, err := b.d.ClaimOutbox(b.ctx, b.ex, &sqldialect.ClaimOutboxParams{Limit: 10, Now: time.Now(), LeaseUntil: time.Now().Add(time.Minute)})
	if err != nil || len(rows) != 1 || string(rows[0].Body) != "old" || rows[0].Headers != nil {
		t.Fatalf("claim after upgrade = %+v, %v; want the old event, without headers", rows, err)
	}
}

func testTableColumns(t *testing.T, h *Harness) {
	b := setup(t, h)
	cols, err := b.d.TableColumns(b.ctx, b.ex, "item")
	if err != nil {
		t.Fatalf("TableColumns: %v", err)
	}
	want := []struct {
		name             string
		nullable, pk, df bool
	}{
		{"id", false, true, false},
		{"name", false, false, false},
		{"note", true, false, false},
		{"cqrs_revision", false, false, true},
		{"cqrs_updated", true, false, false},
	}
	if len(cols) != len(want) {
		t.Fatalf("TableColumns = %+v, want %d columns", cols, len(want))
	}
	for i, w := range want {
		c := cols[i]
		if c.Name != w.name || c.Nullable != w.nullable || c.PrimaryKey != w.pk || c.HasDefault != w.df || c.DeclaredType == "" {
			t.Errorf("column %d = %+v, want name %s nullable %v pk %v default %v and a type", i, c, w.name, w.nullable, w.pk, w.df)
		}
	}
	_, err = b.d.TableColumns(b.ctx, b.ex, "no_such_table")
	if !errors.Is(err, sqldialect.ErrNoTable) {
		t.Fatalf("TableColumns(no_such_table) = %v, want ErrNoTable", err)
	}
}

func testOutbox(t *testing.T, h *Harness) {
	b := setup(t, h)
	now := time.Now().UTC().Truncate(time.Microsecond)
	var in []sqldialect.OutboxRow
	for i := range 5 {
		in = append(in, sqldialect.OutboxRow{CQRSID: "item", Queue: map[bool]string{true: "q1"}[i == 2], Body: []byte(fmt.Sprintf(`{"n":%d,"x":"\u00e9\u0000"}`, i)), CreatedAt: now.Add(time.Duration(i) * time.Second)})
	}
	in[1].Headers = map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "correlation_id": "c\u00e9\""}
	if err := b.d.InsertOutbox(b.ctx, b.ex, in); err != nil {
		t.Fatalf("InsertOutbox: %v", err)
	}
	st, err := b.d.OutboxStats(b.ctx, b.ex)
	if err != nil || st.Rows != 5 || !st.Oldest.Equal(now) {
		t.Fatalf("OutboxStats = %+v, %v; want 5 rows, oldest %v", st, err, now)
	}

	lease := func(at time.Time, limit int) []sqldialect.OutboxRow {
		t.Helper()
		rows, err := b.d.ClaimOutbox(b.ctx, b.ex, &sqldialect.ClaimOutboxParams{Limit: limit, Now: at, LeaseUntil: at.Add(time.Minute)})
		if err != nil {
			t.Fatalf("ClaimOutbox: %v", err)
		}
		return rows
	}
	first := lease(now, 3)
	if len(first) != 3 {
		t.Fatalf("first claim got %d rows, want 3", len(first))
	}
	for i, r := range first {
		if string(r.Body) != string(in[i].Body) || r.Queue != in[i].Queue || r.CQRSID != "item" || !r.CreatedAt.Equal(in[i].CreatedAt) || !maps.Equal(r.Headers, in[i].Headers) {
			t.Fatalf("claimed row %d = %+v, want %+v (in id order, bytes exact)", i, r, in[i])
		}
		if i > 0 && r.ID <= first[i-1].ID {
			t.Fatalf("claimed rows not in id order: %d after %d", r.ID, first[i-1].ID)
		}
	}
	second := lease(now, 10)
	if len(second) != 2 || second[0].ID <= first[2].ID {
		t.Fatalf("second claim = %d rows starting at %v; want the 2 unleased rows after %d", len(second), second, first[2].ID)
	}
	if again := lease(now, 10); len(again) != 0 {
		t.Fatalf("claim while all leased got %d rows, want 0", len(again))
	}
	// Releasing makes rows claimable at once; an expired lease too.
	if err := b.d.ReleaseOutbox(b.ctx, b.ex, []int64{second[0].ID}); err != nil {
		t.Fatalf("ReleaseOutbox: %v", err)
	}
	if got := lease(now, 10); len(got) != 1 || got[0].ID != second[0].ID {
		t.Fatalf("claim after release = %v, want row %d", got, second[0].ID)
	}
	if got := lease(now.Add(2*time.Minute), 10); len(got) != 5 {
		t.Fatalf("claim after leases expired got %d rows, want 5", len(got))
	}
	ids := []int64{first[0].ID, first[1].ID, first[2].ID, second[0].ID}
	if err := b.d.DeleteOutbox(b.ctx, b.ex, ids); err != nil {
		t.Fatalf("DeleteOutbox: %v", err)
	}
	st, err = b.d.OutboxStats(b.ctx, b.ex)
	if err != nil || st.Rows != 1 || !st.Oldest.Equal(in[4].CreatedAt) {
		t.Fatalf("OutboxStats after delete = %+v, %v; want 1 row, oldest %v", st, err, in[4].CreatedAt)
	}
	if err := b.d.DeleteOutbox(b.ctx, b.ex, []int64{second[1].ID}); err != nil {
		t.Fatalf("DeleteOutbox: %v", err)
	}
	st, err = b.d.OutboxStats(b.ctx, b.ex)
	if err != nil || st.Rows != 0 || !st.Oldest.IsZero() {
		t.Fatalf("OutboxStats when empty = %+v, %v; want zero", st, err)
	}
}

func testInsertRow(t *testing.T, h *Harness) {
	b := setup(t, h)
	if err := b.d.RecordTombstones(b.ctx, b.ex, []sqldialect.Tombstone{{CQRSID: "item", Key: "2", Revision: 4, Updated: t0, At: t0}}); err != nil {
		t.Fatal(err)
	}
	insert := func(id int64, name string, outbox *sqldialect.OutboxRow) (rev, outboxID int64, withOutbox bool) {
		t.Helper()
		rows, withOutbox, err := b.d.InsertRow(b.ctx, b.ex, &sqldialect.InsertRowParams{CQRSID: "item", Table: "item", PKColumn: "id",
			Columns: []string{"id", "name"}, Values: []any{id, name}, Key: fmt.Sprint(id), Updated: t0, Outbox: outbox},
			[]string{"name", "cqrs_revision"})
		if err != nil {
			t.Fatalf("InsertRow(%d): %v", id, err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var got string
			dest := []any{&got, &rev}
			if withOutbox {
				dest = append(dest, &outboxID)
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatal(err)
			}
			if got != name {
				t.Fatalf("InsertRow(%d) returned name %q, want %q", id, got, name)
			}
			n++
		}
		if err := rows.Err(); err != nil || n != 1 {
			t.Fatalf("InsertRow(%d) returned %d rows, %v; want 1", id, n, err)
		}
		return rev, outboxID, withOutbox
	}
	// A new key starts at 0; a key deleted at revision 4 continues at 5.
	if rev, _, _ := insert(1, "a", nil); rev != 0 {
		t.Fatalf("new key's revision %d, want 0", rev)
	}
	if rev, _, _ := insert(2, "b", nil); rev != 5 {
		t.Fatalf("re-created key's revision %d, want 5 (after its tombstone's 4)", rev)
	}
	// With an outbox row: written in the same statement where the dialect
	// can, and then it is there with the returned id; elsewhere nothing is
	// written to the outbox.
	ev := &sqldialect.OutboxRow{CQRSID: "item", Queue: "q", Body: []byte(`{"x":1}`), CreatedAt: t0, Headers: map[string]string{"traceparent": "t"}}
	_, id, withOutbox := insert(3, "c", ev)
	rows, err := b.d.ClaimOutbox(b.ctx, b.ex, &sqldialect.ClaimOutboxParams{Limit: 10, Now: t0, LeaseUntil: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case withOutbox && (len(rows) != 1 || rows[0].ID != id || string(rows[0].Body) != `{"x":1}` || rows[0].Queue != "q" || rows[0].Headers["traceparent"] != "t"):
		t.Fatalf("InsertRow with an outbox row: outbox holds %+v, want one row with id %d", rows, id)
	case !withOutbox && len(rows) != 0:
		t.Fatalf("InsertRow reported no outbox row but the outbox holds %+v", rows)
	}
	b.want(t, 3, "c", 0)
}

func testMasterRows(t *testing.T, h *Harness) {
	b := setup(t, h)
	for i := int64(1); i <= 7; i++ {
		b.exec(t, fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, %s)", b.d.QuoteIdent("item"), b.d.QuoteIdent("id"), b.d.QuoteIdent("name"), b.d.Placeholder(1), b.d.Placeholder(2)), i, fmt.Sprintf("n%d", i))
	}
	touch := func(reset bool, pks ...any) {
		t.Helper()
		n, err := b.d.TouchRows(b.ctx, b.ex, &sqldialect.TouchRowsParams{Table: "item", PKColumn: "id", PKs: pks, Updated: t0, Reset: reset})
		if err != nil || n != int64(len(pks)) {
			t.Fatalf("TouchRows(%v) = %d, %v; want %d", pks, n, err, len(pks))
		}
	}
	touch(true, int64(1), int64(2))
	touch(false, int64(2), int64(3))
	touch(false, int64(3))
	b.want(t, 1, "n1", 0)
	b.want(t, 2, "n2", 1)
	b.want(t, 3, "n3", 2)

	// Keyset pages of 3 cover every row once, in key order.
	var seen []int64
	var after any
	for {
		rows, err := b.d.SelectRows(b.ctx, b.ex, &sqldialect.SelectRowsParams{Table: "item", PKColumn: "id", Columns: []string{"id"}, After: after, Limit: 3})
		if err != nil {
			t.Fatalf("SelectRows page: %v", err)
		}
		n := 0
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			seen = append(seen, id)
			after = id
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if n < 3 {
			break
		}
	}
	if fmt.Sprint(seen) != "[1 2 3 4 5 6 7]" {
		t.Fatalf("keyset pages = %v, want [1 2 3 4 5 6 7]", seen)
	}
	// A caller-built condition combines with the page.
	rows, err := b.d.SelectRows(b.ctx, b.ex, &sqldialect.SelectRowsParams{
		Table: "item", PKColumn: "id", Columns: []string{"id"}, After: int64(2),
		Where: []sqldialect.Cond{{Column: "name", Op: sqldialect.OpIn, Values: []any{"n1", "n3", "n4", "n6", "n7"}}},
	})
	if err != nil {
		t.Fatalf("SelectRows with Where: %v", err)
	}
	filtered := scanIDs(t, rows)
	if fmt.Sprint(filtered) != "[3 4 6 7]" {
		t.Fatalf("SelectRows with Where = %v, want [3 4 6 7]", filtered)
	}
	n, err := b.d.DeleteRows(b.ctx, b.ex, "item", "id", []any{int64(6), int64(7), int64(99)})
	if err != nil || n != 2 {
		t.Fatalf("DeleteRows = %d, %v; want 2", n, err)
	}
	b.wantGone(t, 6)

	// A key deleted at revision 5 and created again continues at 6.
	if err := b.d.RecordTombstones(b.ctx, b.ex, []sqldialect.Tombstone{{CQRSID: "item", Key: "6", Revision: 5, Updated: t0, At: t0}}); err != nil {
		t.Fatalf("RecordTombstones: %v", err)
	}
	b.exec(t, fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (6, 'again')", b.d.QuoteIdent("item"), b.d.QuoteIdent("id"), b.d.QuoteIdent("name")))
	n, err = b.d.TouchRows(b.ctx, b.ex, &sqldialect.TouchRowsParams{CQRSID: "item", Table: "item", PKColumn: "id", PKs: []any{int64(6), int64(4)}, Updated: t0, Reset: true})
	if err != nil || n != 2 {
		t.Fatalf("TouchRows(reset) = %d, %v; want 2", n, err)
	}
	b.want(t, 6, "again", 6)
	b.want(t, 4, "n4", 0)

	// TouchSelectRows touches like TouchRows and returns the touched rows
	// as they now are; a missing key is absent.
	rows, err = b.d.TouchSelectRows(b.ctx, b.ex, &sqldialect.TouchRowsParams{CQRSID: "item", Table: "item", PKColumn: "id",
		PKs: []any{int64(4), int64(99), int64(6)}, Updated: t0}, []string{"id", "name", "cqrs_revision"})
	if err != nil {
		t.Fatalf("TouchSelectRows: %v", err)
	}
	if got := nameRevs(t, rows); got != "map[4:n4@1 6:again@7]" {
		t.Fatalf("TouchSelectRows returned %s, want map[4:n4@1 6:again@7]", got)
	}
	b.want(t, 4, "n4", 1)

	// Columns and Values write more columns in the same UPDATE.
	n, err = b.d.TouchRows(b.ctx, b.ex, &sqldialect.TouchRowsParams{Table: "item", PKColumn: "id",
		PKs: []any{int64(5)}, Updated: t0, Columns: []string{"name", "note"}, Values: []any{"five", "noted"}})
	if err != nil || n != 1 {
		t.Fatalf("TouchRows with columns = %d, %v; want 1", n, err)
	}
	b.want(t, 5, "five", 1)
	if _, err := b.d.TouchRows(b.ctx, b.ex, &sqldialect.TouchRowsParams{Table: "item", PKColumn: "id",
		PKs: []any{int64(5)}, Updated: t0, Columns: []string{"name"}}); err == nil {
		t.Fatal("TouchRows with a column and no value succeeded")
	}

	// DeleteSelectRows deletes and returns the rows as they were; a
	// missing key is absent. A dialect without DELETE … RETURNING says so
	// and does nothing.
	rows, err = b.d.DeleteSelectRows(b.ctx, b.ex, "item", "id", []any{int64(4), int64(98)}, []string{"id", "name", "cqrs_revision"})
	if !b.d.Returning() {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("DeleteSelectRows where Returning is false = %v, want errors.ErrUnsupported", err)
		}
		b.want(t, 4, "n4", 1)
		return
	}
	if err != nil {
		t.Fatalf("DeleteSelectRows: %v", err)
	}
	if got := nameRevs(t, rows); got != "map[4:n4@1]" {
		t.Fatalf("DeleteSelectRows returned %s, want map[4:n4@1]", got)
	}
	b.wantGone(t, 4)
	b.want(t, 6, "again", 7)
}

// nameRevs reads rows of (id, name, cqrs_revision) and closes them; it
// returns them as a map printed in key order: "map[4:n4@1 6:again@7]".
func nameRevs(t *testing.T, rows sqldialect.Rows) string {
	t.Helper()
	got := map[int64]string{}
	for rows.Next() {
		var id, rev int64
		var name string
		if err := rows.Scan(&id, &name, &rev); err != nil {
			t.Fatal(err)
		}
		got[id] = fmt.Sprintf("%s@%d", name, rev)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(got)
}

// allGuards are the revision guards of Upsert and UpsertBatch.
var allGuards = []sqldialect.Guard{sqldialect.GuardNewer, sqldialect.GuardNotOlder, sqldialect.GuardAny}

func testUpsert(t *testing.T, b *bundle) {
	const (
		save      = sqldialect.GuardNewer
		broadcast = sqldialect.GuardNotOlder
		repair    = sqldialect.GuardAny
	)
	cases := []struct {
		name  string
		rev   int64
		guard sqldialect.Guard
		// same writes the row the previous step left (wantName) again.
		same      bool
		wantN     int64
		wantName  string
		wantRev   int64
		updatedAt time.Duration
	}{
		{"create", 0, save, false, 1, "create", 0, 0},
		{"newer updates", 3, save, false, 1, "newer updates", 3, 3},
		{"equal is a duplicate", 3, save, false, 0, "newer updates", 3, 3},
		{"older is stale", 2, save, false, 0, "newer updates", 3, 2},
		// A broadcast SYNC older than the stored row must not downgrade it
		// (cqrsync sync on a live table: the SYNC read before a change may
		// arrive after it); one at the stored revision repairs the
		// content; a newer one applies.
		{"older sync is stale", 2, broadcast, false, 0, "newer updates", 3, 2},
		{"sync at the stored revision repairs the content", 3, broadcast, false, 1, "sync at the stored revision repairs the content", 3, 3},
		{"sync of an identical row", 3, broadcast, true, 1, "sync at the stored revision repairs the content", 3, 3},
		{"newer sync applies", 4, broadcast, false, 1, "newer sync applies", 4, 4},
		// A repair (a SYNC sent to one queue) overwrites whatever the
		// stored revision, a newer one included.
		{"repair downgrades a newer row", 2, repair, false, 1, "repair downgrades a newer row", 2, 2},
		{"repair of an identical row", 2, repair, true, 1, "repair downgrades a newer row", 2, 2},
		{"repair at the stored revision repairs the content", 2, repair, false, 1, "repair at the stored revision repairs the content", 2, 2},
		{"newer repair applies", 5, repair, false, 1, "newer repair applies", 5, 5},
	}
	// Each step runs on the row the previous step left: the order is the
	// scenario.
	for _, c := range cases {
		name := c.name
		if c.same {
			name = c.wantName
		}
		n := b.upsert(t, 1, name, c.rev, t0.Add(c.updatedAt), c.guard)
		if n != c.wantN {
			t.Fatalf("%s: Upsert wrote %d rows, want %d", c.name, n, c.wantN)
		}
		b.want(t, 1, c.wantName, c.wantRev)
	}
	// A repair creates a missing row.
	if n := b.upsert(t, 2, "repair creates", 7, t0, repair); n != 1 {
		t.Fatalf("repair of a missing row wrote %d rows, want 1", n)
	}
	b.want(t, 2, "repair creates", 7)
	// A Guard that is none of the constants is refused.
	_, err := b.d.Upsert(b.ctx, b.ex, &sqldialect.UpsertParams{Table: "item", PKColumn: "id",
		Columns: []string{"id", "name", "cqrs_revision", "cqrs_updated"}, Values: []any{int64(3), "x", int64(0), t0},
		Guard: sqldialect.Guard(9), CQRSID: "item", Key: "3", Updated: t0})
	if err == nil || !strings.Contains(err.Error(), "GuardNewer, GuardNotOlder or GuardAny") {
		t.Fatalf("Upsert with Guard(9) = %v, want an error naming the guards", err)
	}
}

func testDeleteBatch(t *testing.T, h *Harness) {
	b := setup(t, h)
	cols, err := b.d.TableColumns(b.ctx, b.ex, "item")
	if err != nil {
		t.Fatal(err)
	}
	var pkType string
	for _, c := range cols {
		if c.Name == "id" {
			pkType = c.DeclaredType
		}
	}
	for id := int64(1); id <= 3; id++ {
		b.upsert(t, id, fmt.Sprint("r", id), 2, t0.Add(2*time.Second), sqldialect.GuardNewer)
	}
	// 1: deleted; 2: the stored row is newer, kept; 3: untouched; 4: no
	// row. Every key gets its tombstone.
	p := &sqldialect.DeleteGuardedBatchParams{Table: "item", PKColumn: "id", PKType: pkType, CQRSID: "item", Now: t0,
		Rows: []sqldialect.DeleteGuardedRow{
			{PK: int64(1), Key: "1", Revision: 3, Updated: t0.Add(3 * time.Second)},
			{PK: int64(2), Key: "2", Revision: 2, Updated: t0.Add(time.Second)},
			{PK: int64(4), Key: "4", Revision: 5, Updated: t0.Add(5 * time.Second)},
		}}
	deleted, err := b.d.DeleteGuardedBatch(b.ctx, b.ex, p)
	if err != nil {
		t.Fatalf("DeleteGuardedBatch: %v", err)
	}
	if fmt.Sprint(deleted) != "[true false false]" {
		t.Fatalf("DeleteGuardedBatch reported %v, want [true false false]", deleted)
	}
	b.wantGone(t, 1)
	b.want(t, 2, "r2", 2)
	b.want(t, 3, "r3", 2)
	// The tombstones guard later SAVEs like DeleteGuarded's.
	if n := b.upsert(t, 1, "late", 2, t0.Add(2*time.Second), sqldialect.GuardNewer); n != 0 {
		t.Fatalf("late SAVE after a batch DELETE wrote %d rows, want 0", n)
	}
	if n := b.upsert(t, 4, "late", 4, t0.Add(4*time.Second), sqldialect.GuardNewer); n != 0 {
		t.Fatalf("late SAVE of a key deleted while missing wrote %d rows, want 0", n)
	}
	if n := b.upsert(t, 4, "after", 6, t0.Add(6*time.Second), sqldialect.GuardNewer); n != 1 {
		t.Fatalf("newer SAVE after the tombstone wrote %d rows, want 1", n)
	}
}

func testDelete(t *testing.T, h *Harness) {
	b := setup(t, h)
	b.upsert(t, 1, "a", 2, t0.Add(2*time.Second), sqldialect.GuardNewer)

	// A DELETE older than the stored row leaves it (a re-created key).
	if n := b.delete(t, 1, 2, t0.Add(time.Second)); n != 0 {
		t.Fatalf("stale DELETE deleted %d rows, want 0", n)
	}
	b.want(t, 1, "a", 2)

	if n := b.delete(t, 1, 3, t0.Add(3*time.Second)); n != 1 {
		t.Fatalf("DELETE deleted %d rows, want 1", n)
	}
	b.wantGone(t, 1)
	// A duplicate DELETE changes nothing and does not fail.
	if n := b.delete(t, 1, 3, t0.Add(3*time.Second)); n != 0 {
		t.Fatalf("duplicate DELETE deleted %d rows, want 0", n)
	}

	// A late SAVE (older than the tombstone) cannot bring the row back,
	// nor can a SYNC, nor an equal revision.
	for _, guard := range allGuards {
		if n := b.upsert(t, 1, "late", 2, t0.Add(2*time.Second), guard); n != 0 {
			t.Fatalf("late SAVE/SYNC (%v) after DELETE wrote %d rows, want 0", guard, n)
		}
		b.wantGone(t, 1)
	}
	for _, guard := range allGuards {
		if n := b.upsert(t, 1, "equal", 3, t0.Add(3*time.Second), guard); n != 0 {
			t.Fatalf("SAVE/SYNC (%v) at the tombstone's revision and time wrote %d rows, want 0", guard, n)
		}
	}
	// A re-create after the delete (a master that restarts at revision 0,
	// with a later cqrs_updated) passes.
	if n := b.upsert(t, 1, "recreated", 0, t0.Add(4*time.Second), sqldialect.GuardNewer); n != 1 {
		t.Fatalf("re-create after DELETE wrote %d rows, want 1", n)
	}
	b.want(t, 1, "recreated", 0)

	// Tombstones keep the newest delete and expire by retention.
	b.delete(t, 2, 5, t0.Add(5*time.Second))
	b.delete(t, 2, 4, t0.Add(4*time.Second)) // older delete arriving late
	if n := b.upsert(t, 2, "late", 4, t0.Add(4*time.Second), sqldialect.GuardNewer); n != 0 {
		t.Fatal("a SAVE older than the newest tombstone passed after an older DELETE arrived")
	}
	n, err := b.d.PurgeTombstones(b.ctx, b.ex, time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PurgeTombstones = %d, %v; want 2", n, err)
	}
	if n := b.upsert(t, 2, "after purge", 4, t0.Add(4*time.Second), sqldialect.GuardNewer); n != 1 {
		t.Fatal("after the tombstone expired, a SAVE should create the row again")
	}
}

// columnTypes maps the columns of table to their declared types.
func (b *bundle) columnTypes(t *testing.T, table string) map[string]string {
	t.Helper()
	cols, err := b.d.TableColumns(b.ctx, b.ex, table)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, c := range cols {
		types[c.Name] = c.DeclaredType
	}
	return types
}

func testUpsertBatch(t *testing.T, b *bundle) {
	types := b.columnTypes(t, "item")
	batch := func(guard sqldialect.Guard, rows ...[]any) []sqldialect.UpsertResult {
		t.Helper()
		p := &sqldialect.UpsertBatchParams{Table: "item", PKColumn: "id", CQRSID: "item", Guard: guard,
			Columns: []string{"id", "name", "note", "cqrs_revision", "cqrs_updated"}, UniqueKeys: b.uniqueKeys}
		for _, c := range p.Columns {
			p.Types = append(p.Types, types[c])
		}
		for _, r := range rows { // id, name, revision, seconds after t0
			id, name, rev, at := r[0].(int64), r[1].(string), r[2].(int64), t0.Add(time.Duration(r[3].(int))*time.Second)
			p.Rows = append(p.Rows, sqldialect.UpsertRow{Values: []any{id, name, nil, rev, at}, Key: fmt.Sprint(id), Revision: rev, Updated: at})
		}
		res, err := b.d.UpsertBatch(b.ctx, b.ex, p)
		if err != nil {
			t.Fatalf("UpsertBatch: %v", err)
		}
		if len(res) != len(rows) {
			t.Fatalf("UpsertBatch reported %d results for %d rows", len(res), len(rows))
		}
		return res
	}
	wantResults := func(got []sqldialect.UpsertResult, want ...sqldialect.UpsertResult) {
		t.Helper()
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("row %d: UpsertBatch reported %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	// Rows 1-4 exist; 5 is deleted (tombstone at revision 3).
	batch(sqldialect.GuardNewer, []any{int64(1), "a1", int64(1), 1}, []any{int64(2), "b1", int64(1), 1}, []any{int64(3), "c5", int64(5), 5}, []any{int64(4), "d1", int64(1), 1})
	if n := b.delete(t, 5, 3, t0.Add(3*time.Second)); n != 0 {
		t.Fatalf("delete of a missing row deleted %d", n)
	}
	res := batch(sqldialect.GuardNewer,
		[]any{int64(1), "a2", int64(2), 2},     // newer: applied
		[]any{int64(2), "b-dup", int64(1), 1},  // duplicate: dropped
		[]any{int64(3), "c-old", int64(4), 4},  // stale: dropped
		[]any{int64(5), "e-late", int64(2), 2}, // older than its tombstone: dropped
		[]any{int64(6), "f0", int64(0), 6},     // new: created
	)
	wantResults(res,
		sqldialect.UpsertResult{Written: true, Existed: true, StoredRevision: 1},
		sqldialect.UpsertResult{Written: false, Existed: true, StoredRevision: 1},
		sqldialect.UpsertResult{Written: false, Existed: true, StoredRevision: 5},
		sqldialect.UpsertResult{Written: false},
		sqldialect.UpsertResult{Written: true},
	)
	b.want(t, 1, "a2", 2)
	b.want(t, 2, "b1", 1)
	b.want(t, 3, "c5", 5)
	b.want(t, 4, "d1", 1)
	b.wantGone(t, 5)
	b.want(t, 6, "f0", 0)
	// SYNCs: older than the stored row, dropped; at the stored revision,
	// written (a repair); newer, written; older than a tombstone, dropped.
	res = batch(sqldialect.GuardNotOlder, []any{int64(3), "c-sync-old", int64(1), 7}, []any{int64(1), "a-repaired", int64(2), 2},
		[]any{int64(4), "d-sync-new", int64(2), 8}, []any{int64(5), "e-sync-late", int64(2), 2})
	wantResults(res,
		sqldialect.UpsertResult{Written: false, Existed: true, StoredRevision: 5},
		sqldialect.UpsertResult{Written: true, Existed: true, StoredRevision: 2},
		sqldialect.UpsertResult{Written: true, Existed: true, StoredRevision: 1},
		sqldialect.UpsertResult{Written: false},
	)
	b.want(t, 3, "c5", 5)
	b.want(t, 1, "a-repaired", 2)
	b.want(t, 4, "d-sync-new", 2)
	b.wantGone(t, 5)
	// Repairs (SYNCs sent to one queue): older than the stored row,
	// written (a downgrade); identical to it, written; newer, written; new,
	// created; older than a tombstone, dropped.
	res = batch(sqldialect.GuardAny, []any{int64(3), "c-repaired-old", int64(1), 9}, []any{int64(1), "a-repaired", int64(2), 2},
		[]any{int64(2), "b-repaired-new", int64(4), 9}, []any{int64(7), "g-repair", int64(3), 9}, []any{int64(5), "e-repair-late", int64(3), 3})
	wantResults(res,
		sqldialect.UpsertResult{Written: true, Existed: true, StoredRevision: 5},
		sqldialect.UpsertResult{Written: true, Existed: true, StoredRevision: 2},
		sqldialect.UpsertResult{Written: true, Existed: true, StoredRevision: 1},
		sqldialect.UpsertResult{Written: true},
		sqldialect.UpsertResult{Written: false},
	)
	b.want(t, 3, "c-repaired-old", 1)
	b.want(t, 1, "a-repaired", 2)
	b.want(t, 2, "b-repaired-new", 4)
	b.want(t, 7, "g-repair", 3)
	b.wantGone(t, 5)

	// Enough rows to need several statements.
	var many [][]any
	for i := int64(100); i < 100+3000; i++ {
		many = append(many, []any{i, fmt.Sprintf("r%d", i), int64(0), 1})
	}
	res = batch(sqldialect.GuardNewer, many...)
	for i, r := range res {
		if r != (sqldialect.UpsertResult{Written: true}) {
			t.Fatalf("row %d of a 3000-row batch of new keys: reported %+v, want written and new", i, r)
		}
	}
	var count int
	if err := queryRow(b.ctx, b.ex, []any{&count}, "SELECT COUNT(*) FROM "+b.d.QuoteIdent("item")); err != nil || count != 3006 {
		t.Fatalf("rows after a 3000-row batch = %d, %v; want 3006", count, err)
	}
}

// upsertOne writes one row as Upsert does (batched false) or as a
// one-row UpsertBatch (batched true), and reports whether it was written.
func (b *bundle) upsertOne(t *testing.T, batched bool, id int64, name string, rev int64, updated time.Time, guard sqldialect.Guard) bool {
	t.Helper()
	if !batched {
		return b.upsert(t, id, name, rev, updated, guard) == 1
	}
	res, err := b.upsertBatchOne(t, id, name, rev, updated, guard)
	if err != nil || len(res) != 1 {
		t.Fatalf("UpsertBatch(%d, %q, rev %d, %v) = %+v, %v", id, name, rev, guard, res, err)
	}
	return res[0].Written
}

// deleteOne deletes one row as DeleteGuarded does (batched false) or as a
// one-row DeleteGuardedBatch (batched true), and reports whether it did.
func (b *bundle) deleteOne(t *testing.T, batched bool, id, rev int64, updated time.Time) bool {
	t.Helper()
	if !batched {
		return b.delete(t, id, rev, updated) == 1
	}
	deleted, err := b.d.DeleteGuardedBatch(b.ctx, b.ex, &sqldialect.DeleteGuardedBatchParams{
		Table: "item", PKColumn: "id", PKType: b.columnTypes(t, "item")["id"], CQRSID: "item", Now: time.Now(),
		Rows: []sqldialect.DeleteGuardedRow{{PK: id, Key: fmt.Sprint(id), Revision: rev, Updated: updated}},
	})
	if err != nil || len(deleted) != 1 {
		t.Fatalf("DeleteGuardedBatch(%d, rev %d) = %v, %v", id, rev, deleted, err)
	}
	return deleted[0]
}

// testReCreatedKey replays what a django-cqrs master sends for a key it
// creates, updates, deletes and creates again: django-cqrs restarts the
// re-created key at revision 0, with a later cqrs_updated than the
// DELETE's. The re-creation must be applied over the tombstone; events
// from before the delete (older cqrs_updated) stay dropped. Single and
// batched writes alike.
func testReCreatedKey(t *testing.T, h *Harness, unique bool) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			b := setupWith(t, h, unique)
			tc := t0                      // create
			tu := t0.Add(time.Second)     // update
			t1 := t0.Add(2 * time.Second) // delete
			t2 := t0.Add(3 * time.Second) // re-create
			t3 := t0.Add(4 * time.Second) // update of the re-created row
			step := func(desc string, got, want bool) {
				t.Helper()
				if got != want {
					t.Fatalf("%s: written %v, want %v", desc, got, want)
				}
			}
			step("create rev 0", b.upsertOne(t, batched, 1, "created", 0, tc, sqldialect.GuardNewer), true)
			step("update rev 1", b.upsertOne(t, batched, 1, "updated", 1, tu, sqldialect.GuardNewer), true)
			if n := b.delete(t, 1, 2, t1); n != 1 {
				t.Fatalf("DELETE rev 2 deleted %d rows, want 1", n)
			}
			step("re-create rev 0 after the delete", b.upsertOne(t, batched, 1, "recreated", 0, t2, sqldialect.GuardNewer), true)
			b.want(t, 1, "recreated", 0)
			step("DELETE rev 2 redelivered", b.deleteOne(t, batched, 1, 2, t1), false)
			b.want(t, 1, "recreated", 0)
			step("stale SAVE rev 1 from before the delete", b.upsertOne(t, batched, 1, "stale", 1, tu, sqldialect.GuardNewer), false)
			step("stale SYNC rev 1 from before the delete", b.upsertOne(t, batched, 1, "stale", 1, tu, sqldialect.GuardNotOlder), false)
			step("stale repair SYNC rev 1 from before the delete", b.upsertOne(t, batched, 1, "stale", 1, tu, sqldialect.GuardAny), false)
			b.want(t, 1, "recreated", 0)
			step("update rev 1 of the re-created row", b.upsertOne(t, batched, 1, "again", 1, t3, sqldialect.GuardNewer), true)
			b.want(t, 1, "again", 1)

			// The re-creation has the revision of the first creation: only
			// cqrs_updated tells the two apart.
			step("create rev 0 of key 2", b.upsertOne(t, batched, 2, "created", 0, tc, sqldialect.GuardNewer), true)
			if n := b.delete(t, 2, 1, t1); n != 1 {
				t.Fatalf("DELETE rev 1 of key 2 deleted %d rows, want 1", n)
			}
			step("stale SAVE rev 0 of key 2", b.upsertOne(t, batched, 2, "stale", 0, tc, sqldialect.GuardNewer), false)
			b.wantGone(t, 2)
			step("re-create rev 0 of key 2", b.upsertOne(t, batched, 2, "recreated", 0, t2, sqldialect.GuardNewer), true)
			b.want(t, 2, "recreated", 0)
			step("DELETE rev 1 of key 2 redelivered", b.deleteOne(t, batched, 2, 1, t1), false)
			b.want(t, 2, "recreated", 0)
			// A later DELETE of the re-created row, at a revision below
			// the tombstone's, still deletes it.
			step("DELETE rev 1 of the re-created key 2", b.deleteOne(t, batched, 2, 1, t3), true)
			b.wantGone(t, 2)
		})
	}
}

// RunLongValues is the suite's LongValues test alone, for a dialect to run
// again under other session settings (a MariaDB session without strict
// mode, for example). It writes values around the byte limits of
// h.TextTypes and h.BinaryTypes (65,535, 65,536, 70,000 bytes, 1 MiB, and
// each type's own limit; ASCII and 4-byte UTF-8), with Upsert and with
// UpsertBatch (a new key and an existing one, each between short rows of
// the same statement). A value that fits must be stored byte for byte; one
// that does not must fail the statement with an error naming the column,
// and write nothing.
func RunLongValues(t *testing.T, h *Harness) { runLongValues(t, h, false) }

// runLongValues is RunLongValues; with unique, the table also has a
// unique key besides its primary key (a column the writes leave NULL), and
// the writes are told so, as a replica tells them.
func runLongValues(t *testing.T, h *Harness, unique bool) {
	b := setup(t, h)
	textTypes := h.TextTypes
	if len(textTypes) == 0 {
		textTypes = []SizedType{{Type: "TEXT"}}
	}
	type column struct {
		name   string
		max    int
		binary bool
	}
	var cols []column
	defs := []string{b.d.QuoteIdent("id") + " BIGINT NOT NULL PRIMARY KEY"}
	for i, st := range append(slices.Clone(textTypes), h.BinaryTypes...) {
		c := column{name: fmt.Sprintf("v%d", i), max: st.MaxBytes, binary: i >= len(textTypes)}
		cols = append(cols, c)
		defs = append(defs, b.d.QuoteIdent(c.name)+" "+st.Type+" NULL")
	}
	ts := cmp.Or(h.TimestampType, "TIMESTAMP")
	defs = append(defs, b.d.QuoteIdent("cqrs_revision")+" INTEGER NOT NULL DEFAULT 0", b.d.QuoteIdent("cqrs_updated")+" "+ts+" NULL")
	if unique {
		defs = append(defs, b.d.QuoteIdent("tag")+" VARCHAR(20) NULL UNIQUE")
	}
	b.exec(t, "CREATE TABLE "+b.d.QuoteIdent("longv")+" ("+strings.Join(defs, ", ")+")")
	cols0, err := b.d.TableColumns(b.ctx, b.ex, "longv")
	if err != nil {
		t.Fatalf("TableColumns: %v", err)
	}
	b.uniqueKeys = slices.ContainsFunc(cols0, func(c sqldialect.Column) bool { return c.Unique })
	typeOf := b.columnTypes(t, "longv")
	// stored reads the column of row id: nil when the row is missing.
	stored := func(col string, id int64) []byte {
		t.Helper()
		var v []byte
		err := queryRow(b.ctx, b.ex, []any{&v}, fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", b.d.QuoteIdent(col),
			b.d.QuoteIdent("longv"), b.d.QuoteIdent("id"), b.d.Placeholder(1)), id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			t.Fatalf("read %s of row %d: %v", col, id, err)
		}
		if v == nil {
			v = []byte{}
		}
		return v
	}
	batch := func(col string, ids []int64, revs []int64, vals []any) error {
		p := &sqldialect.UpsertBatchParams{Table: "longv", PKColumn: "id", CQRSID: "longv", UniqueKeys: b.uniqueKeys,
			Columns: []string{"id", col, "cqrs_revision", "cqrs_updated"}}
		for _, c := range p.Columns {
			p.Types = append(p.Types, typeOf[c])
		}
		for i, id := range ids {
			p.Rows = append(p.Rows, sqldialect.UpsertRow{Values: []any{id, vals[i], revs[i], t0}, Key: fmt.Sprint(id), Revision: revs[i], Updated: t0})
		}
		_, err := b.d.UpsertBatch(b.ctx, b.ex, p)
		return err
	}
	single := func(col string, id int64, v any) error {
		_, err := b.d.Upsert(b.ctx, b.ex, &sqldialect.UpsertParams{
			Table: "longv", PKColumn: "id", Columns: []string{"id", col, "cqrs_revision", "cqrs_updated"},
			Values: []any{id, v, int64(0), t0}, CQRSID: "longv", Key: fmt.Sprint(id), Updated: t0, UniqueKeys: b.uniqueKeys,
		})
		return err
	}
	nextID := int64(0)
	for _, c := range cols {
		sizes := []int{65535, 65536, 70000, 1 << 20}
		if c.max > 0 && c.max < 1<<20 && !slices.Contains(sizes, c.max) {
			sizes = append(sizes, c.max, c.max+1)
		}
		kinds := []string{"ascii", "emoji"}
		if c.binary {
			kinds = []string{"bytes"}
		}
		for _, n := range sizes {
			for _, kind := range kinds {
				var v any
				var want []byte
				switch kind {
				case "ascii":
					v = strings.Repeat("a", n)
				case "emoji": // 4-byte UTF-8: n bytes in about n/4 characters
					v = strings.Repeat("a", n%4) + strings.Repeat("\U0001F600", n/4)
				case "bytes":
					v = bytes.Repeat([]byte{0xff, 0x00, 0x80, 'a'}, n/4+1)[:n]
				}
				if s, ok := v.(string); ok {
					want = []byte(s)
				} else {
					want = v.([]byte)
				}
				fits := c.max == 0 || n <= c.max
				what := fmt.Sprintf("%s: %d bytes (%s) in %s %s", c.name, n, kind, typeOf[c.name], map[bool]string{true: "(fits)", false: "(too long)"}[fits])
				short := "s"
				var shortV any = short
				if c.binary {
					shortV = []byte(short)
				}
				// check compares row id after a write of v that returned err;
				// before is the row's value until then (nil: no row).
				check := func(path string, err error, id int64, before []byte) {
					t.Helper()
					got := stored(c.name, id)
					switch {
					case fits && err != nil:
						t.Errorf("%s, %s: %v", what, path, err)
					case fits && !bytes.Equal(got, want):
						t.Errorf("%s, %s: stored %d bytes, want the %d bytes written, byte for byte", what, path, len(got), len(want))
					case !fits && err == nil:
						t.Errorf("%s, %s: no error; stored %d bytes", what, path, len(got))
					case !fits && !strings.Contains(err.Error(), c.name):
						t.Errorf("%s, %s: error %q does not name the column %s", what, path, err, c.name)
					case !fits && !bytes.Equal(got, before):
						t.Errorf("%s, %s: failed, but the row changed from %d to %d bytes", what, path, len(before), len(got))
					}
				}
				nextID += 10
				id := nextID
				check("Upsert", single(c.name, id, v), id, nil)
				// A new key between two short rows.
				err := batch(c.name, []int64{id + 1, id + 2, id + 3}, []int64{0, 0, 0}, []any{shortV, v, shortV})
				check("UpsertBatch, new row", err, id+2, nil)
				// An existing key (stored short) updated between two new rows.
				if err := batch(c.name, []int64{id + 4}, []int64{0}, []any{shortV}); err != nil {
					t.Fatalf("%s: UpsertBatch of a short value: %v", what, err)
				}
				err = batch(c.name, []int64{id + 5, id + 4, id + 6}, []int64{0, 1, 0}, []any{shortV, v, shortV})
				check("UpsertBatch, updated row", err, id+4, []byte(short))
			}
		}
	}
}

// testKeyVersion reads a key's revision and its tombstone's through the
// life of the key: unknown, stored, deleted, re-created.
func testKeyVersion(t *testing.T, h *Harness) {
	b := setup(t, h)
	version := func(id int64) sqldialect.KeyVersion {
		t.Helper()
		v, err := b.d.KeyVersion(b.ctx, b.ex, &sqldialect.KeyVersionParams{
			Table: "item", PKColumn: "id", PK: id, CQRSID: "item", Key: fmt.Sprint(id),
		})
		if err != nil {
			t.Fatalf("KeyVersion(%d): %v", id, err)
		}
		return v
	}
	check := func(id int64, want sqldialect.KeyVersion) {
		t.Helper()
		if got := version(id); got != want {
			t.Fatalf("KeyVersion(%d) = %+v, want %+v", id, got, want)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	check(1, sqldialect.KeyVersion{Revision: -1, TombstoneRevision: -1})
	b.upsert(t, 1, "a", 3, now, sqldialect.GuardNewer)
	b.upsert(t, 2, "b", 7, now, sqldialect.GuardNewer)
	check(1, sqldialect.KeyVersion{Revision: 3, TombstoneRevision: -1})
	check(2, sqldialect.KeyVersion{Revision: 7, TombstoneRevision: -1})
	b.delete(t, 1, 4, now)
	check(1, sqldialect.KeyVersion{Revision: -1, TombstoneRevision: 4})
	b.upsert(t, 1, "again", 5, now.Add(time.Second), sqldialect.GuardNewer)
	check(1, sqldialect.KeyVersion{Revision: 5, TombstoneRevision: 4})
	check(2, sqldialect.KeyVersion{Revision: 7, TombstoneRevision: -1})
}

// testSecondaryUniqueKey: an upsert writes only the row with its own
// primary key. A row whose value of another unique key is still held by
// another row (events of different keys are applied in parallel, so "7
// takes a@x" may come before "5 gives a@x up") fails with the database's
// unique violation, whatever the guard, single or batched, and writes
// nothing: the other row keeps its content, and no row is added. Once the
// other row has changed, the same row goes through.
func testSecondaryUniqueKey(t *testing.T, h *Harness) {
	b := setupUnique(t, h)
	if n := b.upsert(t, 5, "a@x", 0, t0, sqldialect.GuardNewer); n != 1 {
		t.Fatalf("create row 5 wrote %d rows, want 1", n)
	}
	// Key 7 is at a higher revision than row 5: the revision guard alone
	// would let it overwrite row 5.
	const rev7 = int64(3)
	types := b.columnTypes(t, "item")
	for _, guard := range []sqldialect.Guard{sqldialect.GuardNewer, sqldialect.GuardNotOlder, sqldialect.GuardAny} {
		for _, batched := range []bool{false, true} {
			var err error
			if batched {
				p := &sqldialect.UpsertBatchParams{Table: "item", PKColumn: "id", CQRSID: "item", Guard: guard, UniqueKeys: b.uniqueKeys,
					Columns: []string{"id", "name", "cqrs_revision", "cqrs_updated"},
					Rows: []sqldialect.UpsertRow{
						{Values: []any{int64(8), "c@x", int64(0), t0}, Key: "8", Revision: 0, Updated: t0},
						{Values: []any{int64(7), "a@x", rev7, t0}, Key: "7", Revision: rev7, Updated: t0},
					}}
				for _, c := range p.Columns {
					p.Types = append(p.Types, types[c])
				}
				_, err = b.d.UpsertBatch(b.ctx, b.ex, p)
			} else {
				_, err = b.d.Upsert(b.ctx, b.ex, &sqldialect.UpsertParams{
					Table: "item", PKColumn: "id", Columns: []string{"id", "name", "cqrs_revision", "cqrs_updated"},
					Values: []any{int64(7), "a@x", rev7, t0}, Revision: rev7, Guard: guard,
					CQRSID: "item", Key: "7", Updated: t0, UniqueKeys: b.uniqueKeys,
				})
			}
			if err == nil {
				t.Errorf("%v, batched %v: the row of key 7 taking row 5's unique name succeeded, want the database's unique violation", guard, batched)
			}
			b.want(t, 5, "a@x", 0)
			b.wantGone(t, 7)
			b.wantGone(t, 8) // the failed statement wrote nothing
		}
	}
	// Row 5 gives a@x up: key 7 takes it.
	if n := b.upsert(t, 5, "b@x", 1, t0.Add(time.Second), sqldialect.GuardNewer); n != 1 {
		t.Fatalf("update of row 5 wrote %d rows, want 1", n)
	}
	if n := b.upsert(t, 7, "a@x", rev7, t0, sqldialect.GuardNewer); n != 1 {
		t.Fatalf("create of row 7 after row 5 changed wrote %d rows, want 1", n)
	}
	b.want(t, 5, "b@x", 1)
	b.want(t, 7, "a@x", rev7)
	// A batched write of row 7 to a name row 5 holds fails too, and keeps
	// both rows.
	if _, err := b.upsertBatchOne(t, 7, "b@x", rev7+1, t0.Add(2*time.Second), sqldialect.GuardNewer); err == nil {
		t.Error("a batched update of row 7 to row 5's name succeeded, want the database's unique violation")
	}
	b.want(t, 5, "b@x", 1)
	b.want(t, 7, "a@x", rev7)
}

// upsertBatchOne writes one row with a one-row UpsertBatch.
func (b *bundle) upsertBatchOne(t *testing.T, id int64, name string, rev int64, updated time.Time, guard sqldialect.Guard) ([]sqldialect.UpsertResult, error) {
	t.Helper()
	types := b.columnTypes(t, "item")
	p := &sqldialect.UpsertBatchParams{Table: "item", PKColumn: "id", CQRSID: "item", Guard: guard, UniqueKeys: b.uniqueKeys,
		Columns: []string{"id", "name", "cqrs_revision", "cqrs_updated"},
		Rows:    []sqldialect.UpsertRow{{Values: []any{id, name, rev, updated}, Key: fmt.Sprint(id), Revision: rev, Updated: updated}}}
	for _, c := range p.Columns {
		p.Types = append(p.Types, types[c])
	}
	return b.d.UpsertBatch(b.ctx, b.ex, p)
}

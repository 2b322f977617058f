package sqldialect_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/sqldialect/sqldialecttest"
)

var _ sqldialect.Dialect = sqldialect.MySQL()

// The byte limits of MariaDB's TEXT and BLOB types, for the LongValues test.
var (
	mysqlTextTypes = []sqldialecttest.SizedType{
		{Type: "TINYTEXT", MaxBytes: 255}, {Type: "TEXT", MaxBytes: 65535}, {Type: "MEDIUMTEXT", MaxBytes: 1<<24 - 1},
	}
	mysqlBinaryTypes = []sqldialecttest.SizedType{
		{Type: "TINYBLOB", MaxBytes: 255}, {Type: "BLOB", MaxBytes: 65535}, {Type: "MEDIUMBLOB", MaxBytes: 1<<24 - 1},
		{Type: "VARBINARY(300)", MaxBytes: 300},
	}
)

// newMySQLDB creates an empty database cqrsynctest_<random> on the server
// testenv.MySQLURL names, returns a handle on it (parseTime=true, loc UTC)
// and drops it when the test ends.
func newMySQLDB(t *testing.T) *sql.DB {
	t.Helper()
	return newMySQLDBWith(t, nil)
}

// newMySQLDBWith is newMySQLDB with extra DSN parameters (session
// variables such as sql_mode).
func newMySQLDBWith(t *testing.T, params map[string]string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(testenv.MySQLURL(t))
	if err != nil {
		t.Fatalf("parse CQRSYNC_MYSQL_URL: %v", err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	name := "cqrsynctest_" + hex.EncodeToString(suffix[:])
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		_ = admin.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is canceled by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		_ = admin.Close()
	})

	cfg = cfg.Clone()
	cfg.DBName = name
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	for k, v := range params {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params[k] = v
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestMySQL(t *testing.T) {
	t.Parallel()
	sqldialecttest.Run(t, mysqlHarness(newMySQLDB))
}

// mysqlHarness is the conformance suite's harness for databases newDB
// opens.
func mysqlHarness(newDB func(t *testing.T) *sql.DB) *sqldialecttest.Harness {
	return &sqldialecttest.Harness{
		NewDriver: func(t *testing.T) sqldialect.DB {
			t.Helper()
			return databasesql.New(newDB(t), sqldialect.MySQL())
		},
		TimestampType: "DATETIME(6)",
		TextTypes:     mysqlTextTypes,
		BinaryTypes:   mysqlBinaryTypes,
	}
}

// TestMySQLLongValuesNonStrictSession runs the LongValues conformance test
// in a session without strict mode (an empty sql_mode), as a user's may
// be: a value too long for its column still fails rather than being cut.
func TestMySQLLongValuesNonStrictSession(t *testing.T) {
	testenv.Slow(t, "TestMySQL/LongValues covers the strict session")
	t.Parallel()
	sqldialecttest.RunLongValues(t, mysqlHarness(func(t *testing.T) *sql.DB {
		t.Helper()
		db := newMySQLDBWith(t, map[string]string{"sql_mode": "''"})
		var mode string
		if err := db.QueryRowContext(t.Context(), "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil || mode != "" {
			t.Fatalf("session sql_mode = %q, %v; want it empty", mode, err)
		}
		return db
	}))
}

// mysqlBundle is what one MySQL-specific test works with: a migrated,
// empty database and the replica table item.
type mysqlBundle struct {
	ctx context.Context
	d   sqldialect.Dialect
	db  *sql.DB
	ex  sqldialect.Executor
}

func setupMySQL(t *testing.T) *mysqlBundle {
	t.Helper()
	db := newMySQLDB(t)
	b := &mysqlBundle{ctx: t.Context(), d: sqldialect.MySQL(), db: db, ex: sqldialect.FromSQL(db)}
	if err := b.d.Migrate(b.ctx, b.ex); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	b.exec(t, "CREATE TABLE item (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, "+
		"cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME(6) NULL)")
	return b
}

func (b *mysqlBundle) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := b.db.ExecContext(b.ctx, q, args...); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

// TestMySQLClaimOutboxConcurrent has two relays on two connections claim
// and delete 1000 rows in small batches at the same time: no row may go to
// both, together they get them all, and they never deadlock.
func TestMySQLClaimOutboxConcurrent(t *testing.T) {
	t.Parallel()
	b := setupMySQL(t)
	const total = 1000
	now := time.Now().UTC()
	rows := make([]sqldialect.OutboxRow, total)
	for i := range rows {
		rows[i] = sqldialect.OutboxRow{CQRSID: "item", Body: []byte(fmt.Sprint(i)), CreatedAt: now}
	}
	if err := b.d.InsertOutbox(b.ctx, b.ex, rows); err != nil {
		t.Fatalf("InsertOutbox: %v", err)
	}

	claimed := make([][]int64, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for relay := range 2 {
		conn, err := b.db.Conn(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		ex := sqldialect.FromSQL(conn)
		wg.Go(func() {
			<-start
			for {
				got, err := b.d.ClaimOutbox(b.ctx, ex, &sqldialect.ClaimOutboxParams{Limit: 23, Now: now, LeaseUntil: now.Add(time.Hour)})
				if err != nil {
					errs[relay] = err
					return
				}
				if len(got) == 0 {
					return
				}
				ids := make([]int64, len(got))
				for i, r := range got {
					ids[i] = r.ID
				}
				claimed[relay] = append(claimed[relay], ids...)
				// Deleting as a relay does after the broker confirmed
				// mixes row locks of both kinds.
				if err := b.d.DeleteOutbox(b.ctx, ex, ids); err != nil {
					errs[relay] = err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for relay, err := range errs {
		if err != nil {
			t.Fatalf("relay %d: ClaimOutbox: %v", relay, err)
		}
	}
	seen := map[int64]int{}
	for relay, ids := range claimed {
		for _, id := range ids {
			if other, dup := seen[id]; dup {
				t.Fatalf("row %d claimed by relay %d and relay %d", id, other, relay)
			}
			seen[id] = relay
		}
	}
	if len(seen) != total {
		t.Fatalf("relays claimed %d rows together (%d + %d), want %d", len(seen), len(claimed[0]), len(claimed[1]), total)
	}
	if st, err := b.d.OutboxStats(b.ctx, b.ex); err != nil || st.Rows != 0 {
		t.Fatalf("OutboxStats after both relays = %+v, %v; want empty", st, err)
	}
	t.Logf("relay 0 claimed %d rows, relay 1 claimed %d", len(claimed[0]), len(claimed[1]))
}

// TestMySQLUpsertAffectedRows checks the counts MySQL's ON DUPLICATE KEY
// UPDATE reports through Upsert in the cases where they are subtle: a newer
// revision with otherwise equal values is a write, a duplicate is not, and
// the revision column's place in Columns does not matter.
// TestMySQLUpsertAffectedRows: Upsert's count, on a plain table (ON
// DUPLICATE KEY UPDATE) and on one with a unique key besides the primary
// key (written by key, see UpsertParams.UniqueKeys).
func TestMySQLUpsertAffectedRows(t *testing.T) {
	t.Parallel()
	for _, unique := range []bool{false, true} {
		t.Run(fmt.Sprintf("UniqueKeys=%v", unique), func(t *testing.T) {
			t.Parallel()
			testMySQLUpsertAffectedRows(t, unique)
		})
	}
}

func testMySQLUpsertAffectedRows(t *testing.T, unique bool) {
	b := setupMySQL(t)
	if unique {
		b.exec(t, "CREATE UNIQUE INDEX item_name ON item (name)")
	}
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	// cqrs_revision is not last in Columns: the conflict clause must still
	// assign it last, or the columns after it would compare against the
	// new revision and be skipped.
	upsert := func(name string, rev int64, guard sqldialect.Guard) int64 {
		t.Helper()
		n, err := b.d.Upsert(b.ctx, b.ex, &sqldialect.UpsertParams{
			Table: "item", PKColumn: "id",
			Columns:  []string{"id", "cqrs_revision", "name", "cqrs_updated"},
			Values:   []any{int64(1), rev, name, t0},
			Revision: rev, Guard: guard,
			CQRSID: "item", Key: "1", Updated: t0, UniqueKeys: unique,
		})
		if err != nil {
			t.Fatalf("Upsert(%q, rev %d, %v): %v", name, rev, guard, err)
		}
		return n
	}
	want := func(name string, rev int64) {
		t.Helper()
		var gotName string
		var gotRev int64
		if err := b.db.QueryRowContext(b.ctx, "SELECT name, cqrs_revision FROM item WHERE id = 1").Scan(&gotName, &gotRev); err != nil {
			t.Fatal(err)
		}
		if gotName != name || gotRev != rev {
			t.Fatalf("row = %q at revision %d, want %q at revision %d", gotName, gotRev, name, rev)
		}
	}
	const (
		save      = sqldialect.GuardNewer
		broadcast = sqldialect.GuardNotOlder
		repair    = sqldialect.GuardAny
	)
	steps := []struct {
		desc  string
		name  string
		rev   int64
		guard sqldialect.Guard
		wantN int64
		// the row afterwards
		rowName string
		rowRev  int64
	}{
		{"create", "a", 1, save, 1, "a", 1},
		{"same values, higher revision", "a", 2, save, 1, "a", 2},
		{"same revision, same values (duplicate)", "a", 2, save, 0, "a", 2},
		{"same revision, other values (duplicate)", "b", 2, save, 0, "a", 2},
		{"older revision", "c", 1, save, 0, "a", 2},
		{"newer revision, other values", "d", 3, save, 1, "d", 3},
		{"sync of an older revision (stale)", "e", 2, broadcast, 0, "d", 3},
		{"sync of the stored revision, other values", "e", 3, broadcast, 1, "e", 3},
		{"sync of an identical row", "e", 3, broadcast, 1, "e", 3},
		{"repair of an older revision, same values (downgrade)", "e", 2, repair, 1, "e", 2},
		{"repair of an identical row", "e", 2, repair, 1, "e", 2},
		{"repair of the stored revision, other values", "f", 2, repair, 1, "f", 2},
		{"repair of a newer revision, same values", "f", 3, repair, 1, "f", 3},
		{"sync of an identical row older than a tombstone", "f", 3, broadcast, 0, "f", 3},
		{"repair of an identical row older than a tombstone", "f", 3, repair, 0, "f", 3},
	}
	for _, s := range steps {
		if s.desc == "sync of an identical row older than a tombstone" {
			// A master recorded a later delete of the key (its row here
			// came back through a re-create).
			if err := b.d.RecordTombstones(b.ctx, b.ex, []sqldialect.Tombstone{{CQRSID: "item", Key: "1", Revision: 4, Updated: t0.Add(time.Second), At: t0}}); err != nil {
				t.Fatalf("RecordTombstones: %v", err)
			}
		}
		if n := upsert(s.name, s.rev, s.guard); n != s.wantN {
			t.Fatalf("%s: Upsert = %d, want %d", s.desc, n, s.wantN)
		}
		want(s.rowName, s.rowRev)
	}
}

// TestMySQLTimestamps checks that cqrs_updated keeps its microseconds in
// DATETIME(6) and comes back in UTC, whatever the location it was written in.
func TestMySQLTimestamps(t *testing.T) {
	t.Parallel()
	b := setupMySQL(t)
	in := time.Date(2024, 5, 1, 12, 30, 15, 123456789, time.FixedZone("CEST", 2*3600))
	if _, err := b.d.Upsert(b.ctx, b.ex, &sqldialect.UpsertParams{
		Table: "item", PKColumn: "id",
		Columns: []string{"id", "name", "cqrs_revision", "cqrs_updated"},
		Values:  []any{int64(1), "a", int64(0), in},
		CQRSID:  "item", Key: "1", Updated: in,
	}); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	rows, err := b.d.SelectRows(b.ctx, b.ex, &sqldialect.SelectRowsParams{Table: "item", PKColumn: "id", Columns: []string{"cqrs_updated"}, PKs: []any{int64(1)}})
	if err != nil {
		t.Fatalf("SelectRows: %v", err)
	}
	defer rows.Close()
	var got time.Time
	if !rows.Next() {
		t.Fatalf("no row: %v", rows.Err())
	}
	if err := rows.Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := in.Truncate(time.Microsecond); !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("cqrs_updated = %v, want %v in UTC", got, want.UTC())
	}
}

// TestMySQLTombstoneNewest checks the tombstone conflict clause: the later
// updated time wins, then the higher revision, also within one batch.
func TestMySQLTombstoneNewest(t *testing.T) {
	t.Parallel()
	b := setupMySQL(t)
	at := func(us int64) time.Time { return time.UnixMicro(us).UTC() }
	steps := []struct {
		desc              string
		rev, upd, del     int64
		wantRev, wantUpd  int64
		wantDel           int64
		alsoInSameCommand bool
	}{
		{"first", 3, 5, 100, 3, 5, 100, false},
		{"same time, higher revision", 4, 5, 200, 4, 5, 200, false},
		{"older time, higher revision", 9, 4, 300, 4, 5, 200, false},
		{"later time, lower revision", 1, 6, 400, 1, 6, 400, false},
		{"equal delete again", 1, 6, 500, 1, 6, 400, false},
		{"same time, lower revision", 0, 6, 600, 1, 6, 400, false},
	}
	for _, s := range steps {
		if err := b.d.RecordTombstones(b.ctx, b.ex, []sqldialect.Tombstone{{CQRSID: "item", Key: "k", Revision: s.rev, Updated: at(s.upd), At: at(s.del)}}); err != nil {
			t.Fatalf("%s: RecordTombstones: %v", s.desc, err)
		}
		var rev, upd, del int64
		if err := b.db.QueryRowContext(b.ctx, "SELECT revision, updated_us, deleted_us FROM cqrs_tombstones WHERE cqrs_id = 'item' AND pk = 'k'").Scan(&rev, &upd, &del); err != nil {
			t.Fatal(err)
		}
		if rev != s.wantRev || upd != s.wantUpd || del != s.wantDel {
			t.Fatalf("%s: tombstone = rev %d upd %d del %d, want rev %d upd %d del %d", s.desc, rev, upd, del, s.wantRev, s.wantUpd, s.wantDel)
		}
	}
	// One batch with the newer delete first: the older one must not win.
	if err := b.d.RecordTombstones(b.ctx, b.ex, []sqldialect.Tombstone{
		{CQRSID: "item", Key: "b", Revision: 7, Updated: at(70), At: at(1)},
		{CQRSID: "item", Key: "b", Revision: 6, Updated: at(60), At: at(2)},
	}); err != nil {
		t.Fatalf("RecordTombstones batch: %v", err)
	}
	var rev int64
	if err := b.db.QueryRowContext(b.ctx, "SELECT revision FROM cqrs_tombstones WHERE pk = 'b'").Scan(&rev); err != nil || rev != 7 {
		t.Fatalf("batch tombstone revision = %d, %v; want 7", rev, err)
	}
	// Keys compare exactly (utf8mb4_bin): "B" is not "b".
	if err := b.d.RecordTombstones(b.ctx, b.ex, []sqldialect.Tombstone{{CQRSID: "item", Key: "B", Revision: 1, Updated: at(1), At: at(1)}}); err != nil {
		t.Fatalf("RecordTombstones: %v", err)
	}
	var n int
	if err := b.db.QueryRowContext(b.ctx, "SELECT COUNT(*) FROM cqrs_tombstones WHERE pk IN ('b', 'B')").Scan(&n); err != nil || n != 2 {
		t.Fatalf("tombstones for b and B = %d, %v; want 2", n, err)
	}
}

// TestMySQLTableColumnTypes checks the declared types TableColumns reports
// for common MySQL and MariaDB column types, and the value types cqrsync
// derives from them.
func TestMySQLTableColumnTypes(t *testing.T) {
	t.Parallel()
	b := setupMySQL(t)
	b.exec(t, "CREATE TABLE typed (a BIGINT NOT NULL, b BIGINT NOT NULL, "+
		"flag TINYINT(1) NOT NULL DEFAULT 0, price DECIMAL(14,4) NULL, at DATETIME(6) NULL, "+
		"uid CHAR(36) NULL, doc JSON NULL, body LONGTEXT NULL, title VARCHAR(200) NULL DEFAULT 'x', "+
		"n INT GENERATED ALWAYS AS (a + 1) VIRTUAL, PRIMARY KEY (a, b))")
	cols, err := b.d.TableColumns(b.ctx, b.ex, "typed")
	if err != nil {
		t.Fatalf("TableColumns: %v", err)
	}
	type want struct {
		name, declared string
		vt             cqrsync.ValueType
		pk, def, null  bool
	}
	wants := []want{
		{"a", "bigint", cqrsync.TypeInt, true, false, false},
		{"b", "bigint", cqrsync.TypeInt, false, false, false},
		{"flag", "tinyint(1)", cqrsync.TypeBool, false, true, false},
		{"price", "decimal(14,4)", cqrsync.TypeDecimal, false, false, true},
		{"at", "datetime(6)", cqrsync.TypeDateTime, false, false, true},
		{"uid", "char(36)", cqrsync.TypeString, false, false, true},
		{"doc", "json", cqrsync.TypeJSON, false, false, true},
		{"body", "longtext", cqrsync.TypeString, false, false, true},
		{"title", "varchar(200)", cqrsync.TypeString, false, true, true},
		{"n", "int", cqrsync.TypeInt, false, true, true},
	}
	if len(cols) != len(wants) {
		t.Fatalf("TableColumns = %+v, want %d columns", cols, len(wants))
	}
	for i, w := range wants {
		c := cols[i]
		// MariaDB and MySQL before 8.0.19 add display widths ("bigint(20)").
		declared := c.DeclaredType
		if w.declared == "bigint" || w.declared == "int" {
			declared = trimWidth(declared)
		}
		if c.Name != w.name || declared != w.declared || c.PrimaryKey != w.pk || c.HasDefault != w.def || c.Nullable != w.null {
			t.Errorf("column %d = %+v, want %+v", i, c, w)
		}
		if vt := cqrsync.ValueTypeOfSQL(c.DeclaredType); vt != w.vt {
			t.Errorf("ValueTypeOfSQL(%q) = %v, want %v", c.DeclaredType, vt, w.vt)
		}
	}
}

func trimWidth(s string) string {
	if i := slices.Index([]byte(s), '('); i >= 0 {
		return s[:i]
	}
	return s
}

// TestMySQLTableColumnsUnique: TableColumns flags the columns of unique
// keys other than the primary key, single or composite, and no others.
func TestMySQLTableColumnsUnique(t *testing.T) {
	t.Parallel()
	b := setupMySQL(t)
	b.exec(t, "CREATE TABLE member (id BIGINT NOT NULL PRIMARY KEY, email VARCHAR(100) NOT NULL UNIQUE, "+
		"org INT NOT NULL, handle VARCHAR(50) NOT NULL, city VARCHAR(50) NULL, "+
		"cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME(6) NULL, "+
		"UNIQUE KEY org_handle (org, handle), KEY by_city (city))")
	for table, want := range map[string][]string{"member": {"email", "org", "handle"}, "item": nil} {
		cols, err := b.d.TableColumns(b.ctx, b.ex, table)
		if err != nil {
			t.Fatalf("TableColumns(%s): %v", table, err)
		}
		var got []string
		for _, c := range cols {
			if c.Unique {
				got = append(got, c.Name)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("TableColumns(%s) flags %v Unique, want %v", table, got, want)
		}
	}
}

// TestMySQLUniqueKeyConflict: on a table with a unique key besides the
// primary key, a row whose value of that key another row holds fails with
// the server's duplicate-key error (ER_DUP_ENTRY, 1062), single or
// batched, and leaves the other row alone. Without UniqueKeys (metadata
// read before the key was added), the conflict clause still never writes
// the other row, and the call returns ErrUnknownUniqueKey.
func TestMySQLUniqueKeyConflict(t *testing.T) {
	t.Parallel()
	b := setupMySQL(t)
	b.exec(t, "CREATE UNIQUE INDEX item_name ON item (name)")
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	cols := []string{"id", "name", "cqrs_revision", "cqrs_updated"}
	upsert := func(id int64, name string, rev int64, guard sqldialect.Guard, unique bool) (int64, error) {
		return b.d.Upsert(b.ctx, b.ex, &sqldialect.UpsertParams{Table: "item", PKColumn: "id", Columns: cols,
			Values: []any{id, name, rev, t0}, Revision: rev, Guard: guard, CQRSID: "item", Key: fmt.Sprint(id), Updated: t0, UniqueKeys: unique})
	}
	batch := func(id int64, name string, rev int64, guard sqldialect.Guard, unique bool) ([]sqldialect.UpsertResult, error) {
		return b.d.UpsertBatch(b.ctx, b.ex, &sqldialect.UpsertBatchParams{Table: "item", PKColumn: "id", Columns: cols,
			Types: []string{"bigint", "varchar(100)", "int", "datetime(6)"}, Guard: guard, CQRSID: "item", UniqueKeys: unique,
			Rows: []sqldialect.UpsertRow{{Values: []any{id, name, rev, t0}, Key: fmt.Sprint(id), Revision: rev, Updated: t0}}})
	}
	want := func(desc string) {
		t.Helper()
		var n, rev int64
		var name string
		err := b.db.QueryRowContext(b.ctx, "SELECT (SELECT COUNT(*) FROM item), name, cqrs_revision FROM item WHERE id = 5").Scan(&n, &name, &rev)
		if err != nil || n != 1 || name != "a" || rev != 0 {
			t.Fatalf("%s: %d rows, row 5 = %q at revision %d (%v); want only row 5 = a at revision 0", desc, n, name, rev, err)
		}
	}
	if _, err := upsert(5, "a", 0, sqldialect.GuardNewer, true); err != nil {
		t.Fatal(err)
	}
	for _, guard := range []sqldialect.Guard{sqldialect.GuardNewer, sqldialect.GuardNotOlder, sqldialect.GuardAny} {
		_, err := upsert(7, "a", 3, guard, true)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1062 {
			t.Errorf("Upsert %v of key 7 with row 5's name = %v, want ER_DUP_ENTRY (1062)", guard, err)
		}
		want(fmt.Sprintf("Upsert %v", guard))
		_, err = batch(7, "a", 3, guard, true)
		if !errors.As(err, &me) || me.Number != 1062 {
			t.Errorf("UpsertBatch %v of key 7 with row 5's name = %v, want ER_DUP_ENTRY (1062)", guard, err)
		}
		want(fmt.Sprintf("UpsertBatch %v", guard))
		if _, err := upsert(7, "a", 3, guard, false); !errors.Is(err, sqldialect.ErrUnknownUniqueKey) {
			t.Errorf("Upsert %v without UniqueKeys = %v, want ErrUnknownUniqueKey", guard, err)
		}
		want(fmt.Sprintf("Upsert %v without UniqueKeys", guard))
		if _, err := batch(7, "a", 3, guard, false); !errors.Is(err, sqldialect.ErrUnknownUniqueKey) {
			t.Errorf("UpsertBatch %v without UniqueKeys = %v, want ErrUnknownUniqueKey", guard, err)
		}
		want(fmt.Sprintf("UpsertBatch %v without UniqueKeys", guard))
	}
}

// TestMySQLUniqueKeysRaces: on a table with other unique keys, Upsert and
// UpsertBatch read without locking whether a key is stored, then UPDATE
// or INSERT it. Another process may insert or delete the key in between
// (here: after the transaction's snapshot); the row must still be
// written, the other way.
func TestMySQLUniqueKeysRaces(t *testing.T) {
	t.Parallel()
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			t.Parallel()
			b := setupMySQL(t)
			b.exec(t, "CREATE UNIQUE INDEX item_name ON item (name)")
			t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
			b.exec(t, "INSERT INTO item (id, name, cqrs_revision, cqrs_updated) VALUES (8, 'old 8', 0, ?)", t0)
			tx, err := b.db.BeginTx(b.ctx, nil) // REPEATABLE READ, the default
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			var n int
			if err := tx.QueryRowContext(b.ctx, "SELECT COUNT(*) FROM item").Scan(&n); err != nil || n != 1 {
				t.Fatalf("snapshot: %d rows, %v", n, err)
			}
			// After the snapshot, another process creates key 7 and deletes
			// key 8 (its DELETE left no tombstone newer than the writes).
			b.exec(t, "INSERT INTO item (id, name, cqrs_revision, cqrs_updated) VALUES (7, 'old 7', 0, ?)", t0)
			b.exec(t, "DELETE FROM item WHERE id = 8")
			ex := sqldialect.FromSQL(tx)
			cols := []string{"id", "name", "cqrs_revision", "cqrs_updated"}
			rows := []sqldialect.UpsertRow{
				{Values: []any{int64(7), "new 7", int64(1), t0}, Key: "7", Revision: 1, Updated: t0},
				{Values: []any{int64(8), "new 8", int64(1), t0}, Key: "8", Revision: 1, Updated: t0},
			}
			if batched {
				_, err = b.d.UpsertBatch(b.ctx, ex, &sqldialect.UpsertBatchParams{Table: "item", PKColumn: "id", Columns: cols,
					Types: []string{"bigint", "varchar(100)", "int", "datetime(6)"}, CQRSID: "item", UniqueKeys: true, Rows: rows})
			} else {
				for _, r := range rows {
					var n int64
					n, err = b.d.Upsert(b.ctx, ex, &sqldialect.UpsertParams{Table: "item", PKColumn: "id", Columns: cols,
						Values: r.Values, Revision: r.Revision, CQRSID: "item", Key: r.Key, Updated: r.Updated, UniqueKeys: true})
					if err != nil || n != 1 {
						t.Fatalf("Upsert of key %s = %d, %v; want 1 row written", r.Key, n, err)
					}
				}
			}
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			for id, want := range map[int64]string{7: "new 7", 8: "new 8"} {
				var name string
				if err := b.db.QueryRowContext(b.ctx, "SELECT name FROM item WHERE id = ?", id).Scan(&name); err != nil || name != want {
					t.Errorf("row %d = %q, %v; want %q", id, name, err, want)
				}
			}
		})
	}
}

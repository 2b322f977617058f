package trigger_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/capture/trigger"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// TestInstallStatusUninstall checks the life cycle of a table's triggers.
func TestInstallStatusUninstall(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		mt := newMaster(t, b)
		ctx := t.Context()
		status := func() trigger.Status {
			t.Helper()
			st, err := trigger.StatusOf(ctx, mt.drv, accountModel())
			if err != nil {
				t.Fatal(err)
			}
			return st[0]
		}
		if st := status(); st.Installed || st.Partial || len(st.Triggers) != 0 {
			t.Fatalf("before install: %+v", st)
		}
		mt.install(t)
		mt.install(t) // again: idempotent
		if st := status(); !st.Installed || !st.Current || st.Partial {
			t.Fatalf("after install: %+v", st)
		}
		if got := status().String(); got != "account (table account): installed" {
			t.Errorf("String() = %q", got)
		}
		// A model that changed (produce off) makes the triggers stale.
		changed := accountModel()
		changed.NoProduce = true
		st, err := trigger.StatusOf(ctx, mt.drv, changed)
		if err != nil {
			t.Fatal(err)
		}
		if !st[0].Installed || st[0].Current {
			t.Fatalf("after a model change: %+v, want installed and not current", st[0])
		}
		mt.exec(t, `INSERT INTO account (id, name) VALUES (1, 'Ada')`)
		if got := mt.published(t); len(got) != 1 {
			t.Fatalf("installed: %d events, want 1", len(got))
		}
		if err := trigger.Uninstall(ctx, mt.drv, accountModel()); err != nil {
			t.Fatal(err)
		}
		if err := trigger.Uninstall(ctx, mt.drv, accountModel()); err != nil {
			t.Fatalf("uninstall again: %v", err)
		}
		if st := status(); st.Installed || len(st.Triggers) != 0 {
			t.Fatalf("after uninstall: %+v", st)
		}
		mt.exec(t, `UPDATE account SET name = 'x' WHERE id = 1`)
		if got := mt.published(t); len(got) != 0 {
			t.Fatalf("uninstalled: %d events, want none", len(got))
		}
	})
}

// TestInstallOnLiveTable installs the triggers, three times, while writers
// keep updating the table: once the first install committed, every write
// is captured (the events' counters have no gap).
func TestInstallOnLiveTable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		mt := newMaster(t, b, b.account, `CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL,
			cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated `+map[string]string{"postgres": "TIMESTAMPTZ", "mysql": "DATETIME(6)"}[b.name]+`)`,
			`INSERT INTO counter (id, n) VALUES (1, 0), (2, 0), (3, 0)`)
		model := &cqrsync.MasterModel{CQRSID: "counter", Table: "counter"}
		if err := mt.m.Register(model); err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(t.Context())
		var writes atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for id := 1; id <= 3; id++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if _, err := mt.db.ExecContext(ctx, fmt.Sprintf("UPDATE counter SET n = n + 1 WHERE id = %d", id)); err != nil {
						if ctx.Err() == nil {
							errs <- err
						}
						return
					}
					writes.Add(1)
				}
			}()
		}
		for range 3 {
			if err := trigger.Install(t.Context(), mt.drv, model); err != nil {
				stop()
				wg.Wait()
				t.Fatal(err)
			}
			seen := writes.Load()
			cqrsynctesting.Eventually(t, 10*time.Second, "writes after the install", func() bool { return writes.Load() > seen+20 })
		}
		stop()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		byID := map[int64][]int64{}
		for _, body := range mt.published(t) {
			p, err := cqrsync.DecodePayload([]byte(body), mt.pubAt)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := cqrsync.ColumnValue(cqrsync.TypeInt, p.InstancePK)
			nv, _ := p.InstanceData.Get("n")
			n, _ := cqrsync.ColumnValue(cqrsync.TypeInt, nv)
			byID[id.(int64)] = append(byID[id.(int64)], n.(int64))
		}
		for id := int64(1); id <= 3; id++ {
			ns := byID[id]
			var final int64
			if err := mt.db.QueryRowContext(t.Context(), fmt.Sprintf("SELECT n FROM counter WHERE id = %d", id)).Scan(&final); err != nil {
				t.Fatal(err)
			}
			if len(ns) == 0 {
				t.Fatalf("row %d: no events", id)
			}
			slices.Sort(ns)
			for i := 1; i < len(ns); i++ {
				if ns[i] != ns[i-1]+1 {
					t.Fatalf("row %d: write %d was not captured (events jump from n=%d to n=%d)", id, ns[i-1]+1, ns[i-1], ns[i])
				}
			}
			if ns[len(ns)-1] != final {
				t.Errorf("row %d: last event has n=%d, the row has %d", id, ns[len(ns)-1], final)
			}
		}
	})
}

// TestSQLiteHasNoTriggers checks that SQLite says so clearly.
func TestSQLiteHasNoTriggers(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE account (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	drv := databasesql.New(db, sqldialect.SQLite())
	err := trigger.Install(t.Context(), drv, accountModel())
	if !errors.Is(err, sqldialect.ErrNoCaptureTriggers) {
		t.Fatalf("Install on SQLite = %v, want ErrNoCaptureTriggers", err)
	}
	if _, err := trigger.StatusOf(t.Context(), drv, accountModel()); !errors.Is(err, sqldialect.ErrNoCaptureTriggers) {
		t.Fatalf("StatusOf on SQLite = %v, want ErrNoCaptureTriggers", err)
	}
}

// TestCheckReportsStaleTriggers checks that Master.Check names triggers
// that no longer fit the table or the model, and what to run.
func TestCheckReportsStaleTriggers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		mt := newMaster(t, b)
		mt.install(t)
		ctx := t.Context()
		if err := mt.m.Check(ctx, mt.drv.Pool()); err != nil {
			t.Fatalf("Check after install: %v", err)
		}
		// MySQL's triggers name every column; PostgreSQL's do not, but
		// they do depend on the model's produce setting.
		changed, err := cqrsync.NewMaster(mt.drv, nil)
		if err != nil {
			t.Fatal(err)
		}
		model := accountModel()
		if b.name == "mysql" {
			mt.exec(t, `ALTER TABLE account ADD COLUMN nickname VARCHAR(20)`)
		} else {
			model.NoProduce = true
		}
		if err := changed.Register(model); err != nil {
			t.Fatal(err)
		}
		err = changed.Check(ctx, mt.drv.Pool())
		if !errors.Is(err, cqrsync.ErrSchema) || !strings.Contains(err.Error(), "run cqrsync capture install -c account") {
			t.Fatalf("Check with stale triggers = %v, want a problem naming capture install", err)
		}
		if err := trigger.Install(ctx, mt.drv, model); err != nil {
			t.Fatal(err)
		}
		if err := changed.Check(ctx, mt.drv.Pool()); err != nil {
			t.Fatalf("Check after reinstalling: %v", err)
		}
	})
}

// TestLongAndQuotedTableName installs triggers on a table whose name needs
// quoting and is too long to prefix (trigger names are then shortened with
// a hash), and checks that its writes are captured.
func TestLongAndQuotedTableName(t *testing.T) {
	const table = "Order Items of a Rather Long Name, beyond trigger names"
	forEachBackend(t, func(t *testing.T, b backend) {
		q := b.dialect.QuoteIdent(table)
		updated := map[string]string{"postgres": "TIMESTAMPTZ", "mysql": "DATETIME(6)"}[b.name]
		mt := newMaster(t, b, `CREATE TABLE `+q+` (id INTEGER PRIMARY KEY, name VARCHAR(20), cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated `+updated+`)`)
		model := &cqrsync.MasterModel{CQRSID: "counter", Table: table}
		if err := mt.m.Register(model); err != nil {
			t.Fatal(err)
		}
		if err := trigger.Install(t.Context(), mt.drv, model); err != nil {
			t.Fatal(err)
		}
		st, err := trigger.StatusOf(t.Context(), mt.drv, model)
		if err != nil {
			t.Fatal(err)
		}
		if !st[0].Installed || !st[0].Current {
			t.Fatalf("status: %+v", st[0])
		}
		mt.exec(t, `INSERT INTO `+q+` (id, name) VALUES (1, 'a')`, `UPDATE `+q+` SET name = 'b'`, `DELETE FROM `+q)
		if got := mt.published(t); len(got) != 3 {
			t.Fatalf("%d events, want 3: %q", len(got), got)
		}
		if err := trigger.Uninstall(t.Context(), mt.drv, model); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTriggersOfAnOlderVersion installs MySQL triggers as cqrsync installed
// them before library captures marked themselves with a row of
// cqrs_capture_marks (they tested the user variable @cqrsync_capture alone,
// which a capture cancelled mid-call left set on a pooled connection), on a
// database without the marks table: Status and Check report them as not
// current; library captures go on making one event each, without the
// table and once migrate made it; capture install makes them current.
func TestTriggersOfAnOlderVersion(t *testing.T) {
	t.Parallel()
	mt := newMySQLMaster(t)
	b := mt.b
	ctx := t.Context()
	const (
		now = "IF @cqrsync_capture IS NULL OR NOT EXISTS (SELECT 1 FROM cqrs_capture_marks WHERE conn_id = CONNECTION_ID()) THEN"
		old = "IF @cqrsync_capture IS NULL THEN"
	)
	rows, err := mt.db.QueryContext(ctx, `SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT
		FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'account'`)
	if err != nil {
		t.Fatal(err)
	}
	var older []string
	for rows.Next() {
		var name, timing, event, body string
		if err := rows.Scan(&name, &timing, &event, &body); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(body, now) {
			t.Fatalf("trigger %s does not test the marks table: %s", name, body)
		}
		older = append(older, "DROP TRIGGER "+name,
			fmt.Sprintf("CREATE TRIGGER %s %s %s ON account FOR EACH ROW %s", name, timing, event, strings.ReplaceAll(body, now, old)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(older) != 10 {
		t.Fatalf("%d statements for the older triggers, want 10 (five triggers)", len(older))
	}
	for _, q := range append(older, "DROP TABLE cqrs_capture_marks") {
		if _, err := mt.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	st, err := trigger.StatusOf(ctx, mt.drv, accountModel())
	if err != nil {
		t.Fatal(err)
	}
	if !st[0].Installed || st[0].Current {
		t.Fatalf("older triggers: %+v, want installed and not current", st[0])
	}
	if err := mt.m.Check(ctx, mt.drv.Pool()); !errors.Is(err, cqrsync.ErrSchema) || !strings.Contains(err.Error(), "run cqrsync capture install -c account") {
		t.Fatalf("Check with older triggers = %v, want a problem naming capture install", err)
	}
	// One event per library capture, at the library's revisions.
	capture := func(what string, rev int64, fn func(ctx context.Context, tx *sql.Tx) error) {
		t.Helper()
		mt.libraryTx(t, mt.clock.Now(), fn)
		got := mt.published(t)
		if len(got) != 1 {
			t.Fatalf("%s: %d events, want 1: %q", what, len(got), got)
		}
		p, err := cqrsync.DecodePayload([]byte(got[0]), mt.pubAt)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := p.Revision(); r != rev {
			t.Fatalf("%s: revision %d, want %d", what, r, rev)
		}
	}
	capture("older triggers, no marks table", 0, func(ctx context.Context, tx *sql.Tx) error {
		return mt.m.Insert(ctx, tx, "account", map[string]any{"id": 1, "name": "Ada"})
	})
	if err := b.dialect.Migrate(ctx, mt.drv.Pool()); err != nil {
		t.Fatal(err)
	}
	capture("older triggers after migrate", 1, func(ctx context.Context, tx *sql.Tx) error {
		return mt.m.UpdateRow(ctx, tx, "account", 1, map[string]any{"name": "Ada L"})
	})

	mt.install(t)
	if st, err := trigger.StatusOf(ctx, mt.drv, accountModel()); err != nil || !st[0].Current {
		t.Fatalf("after installing again: %+v, %v", st, err)
	}
	capture("after installing again", 2, func(ctx context.Context, tx *sql.Tx) error {
		return mt.m.UpdateRow(ctx, tx, "account", 1, map[string]any{"name": "Ada Lovelace"})
	})
}

// Package gormtest is the GORM plugin's test suite, run on every database
// by a test package that opens it: gormcqrs's own tests on SQLite
// (github.com/glebarez/sqlite) and gormcqrs/internal/servertest on
// PostgreSQL and MariaDB — a binary of its own, as the pure-Go GORM SQLite
// driver and the test helpers' SQLite driver both register the name
// "sqlite".
package gormtest

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

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/gormcqrs"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// Opener opens a new, empty database of the test's own with cqrsync's
// migration run, through GORM configured by cfg.
type Opener func(tb testing.TB, cfg *gorm.Config) *gorm.DB

// Account is the suite's master model.
type Account struct {
	ID        int64  `gorm:"primaryKey;autoIncrement:false"`
	Name      string `gorm:"size:100"`
	Balance   int64
	Status    string         `gorm:"size:20"`
	DeletedAt gorm.DeletedAt `gorm:"precision:6"`
	gormcqrs.Revision
}

// TableName is the table GORM writes Account to.
func (Account) TableName() string { return "gorm_account" }

// libTable is the twin of Account's table that the library capture writes.
const libTable = "lib_account"

// Clock is the suites' fixed clock: events captured at the same tick are
// byte for byte comparable.
var Clock = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

// Config returns the GORM configuration of the suites: the fixed clock,
// and no log.
func Config() *gorm.Config {
	return &gorm.Config{NowFunc: func() time.Time { return Clock }, Logger: logger.Discard}
}

// accountModel is the master model both captures register, with every
// option the plugin passes on: tracked fields, is_sync_instance and a
// custom serializer.
func accountModel(table string) *cqrsync.MasterModel {
	return &cqrsync.MasterModel{
		CQRSID:         "account",
		Table:          table,
		TrackedFields:  []string{"name", "status"},
		IsSyncInstance: func(row cqrsync.Object) bool { s, _ := row.Get("status"); return s != "hidden" },
		Serializer: func(_ context.Context, _ sqldialect.Executor, rows []cqrsync.Object) ([]cqrsync.Object, error) {
			out := make([]cqrsync.Object, len(rows))
			for i, r := range rows {
				name, _ := r.Get("name")
				s, _ := name.(string)
				out[i] = append(r.Clone(), cqrsync.Member{Key: "display", Value: strings.ToUpper(s)})
			}
			return out, nil
		},
	}
}

// waker counts the relay wake-ups a master asks for.
type waker struct{ n atomic.Int64 }

func (w *waker) Wake() { w.n.Add(1) }

// fixture is a database with the GORM capture and the library capture of
// the same model side by side.
type fixture struct {
	db     *gorm.DB
	sqlDB  *sql.DB
	plugin *gormcqrs.Plugin
	gorm   *cqrsync.Master[*sql.Tx] // captures gorm_account through the plugin
	lib    *cqrsync.Master[*sql.Tx] // captures lib_account by hand
	wakes  *waker
}

func newFixture(t *testing.T, open Opener, cfg *cqrsync.MasterConfig) *fixture {
	t.Helper()
	db := open(t, Config())
	drv, err := gormcqrs.Driver(db)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, sqlDB: drv.DB(), wakes: &waker{}}
	if err := db.AutoMigrate(&Account{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Table(libTable).AutoMigrate(&Account{}); err != nil {
		t.Fatal(err)
	}
	c := *cfg
	c.Now = func() time.Time { return Clock }
	c.Relay = f.wakes
	if f.gorm, err = cqrsync.NewMaster(drv, &c); err != nil {
		t.Fatal(err)
	}
	c.Relay = nil
	if f.lib, err = cqrsync.NewMaster(drv, &c); err != nil {
		t.Fatal(err)
	}
	f.plugin = gormcqrs.New(f.gorm)
	if err := db.Use(f.plugin); err != nil {
		t.Fatal(err)
	}
	if err := f.plugin.Register(&Account{}, accountModel("")); err != nil {
		t.Fatal(err)
	}
	if err := f.lib.Register(accountModel(libTable)); err != nil {
		t.Fatal(err)
	}
	return f
}

// drain returns the bodies in the outbox, in capture order, and empties it.
func (f *fixture) drain(t *testing.T) []string {
	t.Helper()
	rows, err := f.sqlDB.QueryContext(t.Context(), "SELECT body FROM cqrs_outbox ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	if err := cmpErr(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sqlDB.ExecContext(t.Context(), "DELETE FROM cqrs_outbox"); err != nil {
		t.Fatal(err)
	}
	return bodies
}

func cmpErr(errs ...error) error { return errors.Join(errs...) }

// lib runs fn, the library capture of a change, in a transaction.
func (f *fixture) libTx(t *testing.T, fn func(ctx context.Context, tx *sql.Tx) error) {
	t.Helper()
	if err := cqrsync.RunTx(t.Context(), f.sqlDB, f.lib, func(tx *sql.Tx) error { return fn(t.Context(), tx) }); err != nil {
		t.Fatal(err)
	}
}

// exec runs a statement on lib_account ({t} names it) in tx.
func exec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	_, err := tx.ExecContext(ctx, strings.ReplaceAll(query, "{t}", libTable), args...)
	return err
}

// step is one change made through GORM and by hand.
type step struct {
	name string
	gorm func(db *gorm.DB) error
	lib  func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error
	want int // events expected
}

// RunEvents checks that every kind of GORM write produces the events the
// library capture produces for the same change, byte for byte, and that
// the two tables end equal.
func RunEvents(t *testing.T, open Opener) {
	f := newFixture(t, open, &cqrsync.MasterConfig{})
	ph := placeholders(f.db)
	insert := func(ctx context.Context, tx *sql.Tx, rows ...Account) error {
		for _, r := range rows {
			if err := exec(ctx, tx, "INSERT INTO {t} (id, name, balance, status) VALUES "+ph(4), r.ID, r.Name, r.Balance, r.Status); err != nil {
				return err
			}
		}
		return nil
	}
	steps := []step{{
		name: "Create",
		gorm: func(db *gorm.DB) error {
			return db.Create(&Account{ID: 1, Name: "Ada", Balance: 10, Status: "new"}).Error
		},
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			return cmpErr(insert(ctx, tx, Account{ID: 1, Name: "Ada", Balance: 10, Status: "new"}), m.Create(ctx, tx, "account", 1))
		},
		want: 1,
	}, {
		name: "batch Create",
		gorm: func(db *gorm.DB) error {
			return db.CreateInBatches(&[]Account{{ID: 2, Name: "Bob", Balance: 20}, {ID: 3, Name: "Cy", Status: "new"}, {ID: 4, Name: "Di"}}, 2).Error
		},
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			return cmpErr(insert(ctx, tx, Account{ID: 2, Name: "Bob", Balance: 20}, Account{ID: 3, Name: "Cy", Status: "new"}, Account{ID: 4, Name: "Di"}),
				m.Create(ctx, tx, "account", 2, 3, 4))
		},
		want: 3,
	}, {
		name: "is_sync_instance refuses",
		gorm: func(db *gorm.DB) error { return db.Create(&Account{ID: 9, Name: "Hid", Status: "hidden"}).Error },
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			return cmpErr(insert(ctx, tx, Account{ID: 9, Name: "Hid", Status: "hidden"}), m.Create(ctx, tx, "account", 9))
		},
	}, {
		name: "Save",
		gorm: func(db *gorm.DB) error {
			var a Account
			if err := db.First(&a, 1).Error; err != nil {
				return err
			}
			a.Name, a.Status = "Ada Lovelace", "new"
			return db.Save(&a).Error
		},
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			prev, err := m.Snapshot(ctx, tx, "account", 1)
			if err != nil {
				return err
			}
			return cmpErr(exec(ctx, tx, "UPDATE {t} SET name = 'Ada Lovelace' WHERE id = 1"),
				m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Previous: prev}, 1))
		},
		want: 1,
	}, {
		// MySQL reports an UPDATE that changes nothing as affecting no row:
		// Save must not then insert the row again (one event, not two).
		name: "Save unchanged",
		gorm: func(db *gorm.DB) error {
			var a Account
			if err := db.First(&a, 1).Error; err != nil {
				return err
			}
			return db.Save(&a).Error
		},
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			prev, err := m.Snapshot(ctx, tx, "account", 1)
			if err != nil {
				return err
			}
			return m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Previous: prev}, 1)
		},
		want: 1,
	}, {
		name: "partial Updates publishes nothing",
		gorm: func(db *gorm.DB) error { return db.Model(&Account{ID: 2}).Updates(map[string]any{"balance": 21}).Error },
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			return cmpErr(exec(ctx, tx, "UPDATE {t} SET balance = 21 WHERE id = 2"),
				m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Fields: []string{"balance"}}, 2))
		},
	}, {
		name: "Updates with UpdateCQRSFields",
		gorm: func(db *gorm.DB) error {
			return gormcqrs.UpdateCQRSFields(db).Model(&Account{ID: 2}).Updates(Account{Name: "Bobby", Balance: 22}).Error
		},
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			prev, err := m.Snapshot(ctx, tx, "account", 2)
			if err != nil {
				return err
			}
			return cmpErr(exec(ctx, tx, "UPDATE {t} SET name = 'Bobby', balance = 22 WHERE id = 2"),
				m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Previous: prev, Fields: []string{"name", "balance"}, UpdateCQRSFields: true}, 2))
		},
		want: 1,
	}, {
		name: "Update of many rows by WHERE",
		gorm: func(db *gorm.DB) error {
			return db.Model(&Account{}).Where("balance < ?", 30).Select("*").Updates(map[string]any{"status": "bulk"}).Error
		},
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			prev, err := m.Snapshot(ctx, tx, "account", 1, 2, 3, 4, 9)
			if err != nil {
				return err
			}
			return cmpErr(exec(ctx, tx, "UPDATE {t} SET status = 'bulk' WHERE balance < 30"),
				m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Previous: prev}, 1, 2, 3, 4, 9))
		},
		want: 5, // 9 is no longer hidden
	}, {
		name: "upsert: one inserted, one updated",
		gorm: func(db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&[]Account{{ID: 4, Name: "Diana", Status: "bulk"}, {ID: 5, Name: "Eve"}}).Error
		},
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			prev, err := m.Snapshot(ctx, tx, "account", 4)
			if err != nil {
				return err
			}
			return cmpErr(exec(ctx, tx, "UPDATE {t} SET name = 'Diana' WHERE id = 4"), insert(ctx, tx, Account{ID: 5, Name: "Eve"}),
				m.Create(ctx, tx, "account", 5), m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Previous: prev}, 4))
		},
		want: 2,
	}, {
		name: "upsert DoNothing",
		gorm: func(db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{DoNothing: true}).Create(&[]Account{{ID: 5, Name: "Eve 2"}, {ID: 6, Name: "Fay"}}).Error
		},
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			return cmpErr(insert(ctx, tx, Account{ID: 6, Name: "Fay"}), m.Create(ctx, tx, "account", 6))
		},
		want: 1,
	}, {
		name: "soft Delete",
		gorm: func(db *gorm.DB) error { return db.Delete(&Account{ID: 3}).Error },
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			prev, err := m.Snapshot(ctx, tx, "account", 3)
			if err != nil {
				return err
			}
			return cmpErr(exec(ctx, tx, "UPDATE {t} SET deleted_at = "+ph(1)[1:len(ph(1))-1]+" WHERE id = 3", Clock),
				m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Previous: prev}, 3))
		},
		want: 1,
	}, {
		// GORM's UPDATE skips the soft-deleted row, and Save falls back to
		// an upsert, which brings it back: an update, not a creation.
		name: "Save of a soft-deleted row",
		gorm: func(db *gorm.DB) error { return db.Save(&Account{ID: 3, Name: "Cy again", Status: "bulk"}).Error },
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			prev, err := m.Snapshot(ctx, tx, "account", 3)
			if err != nil {
				return err
			}
			return cmpErr(exec(ctx, tx, "UPDATE {t} SET name = 'Cy again', deleted_at = NULL WHERE id = 3"),
				m.UpdateWith(ctx, tx, "account", &cqrsync.UpdateOpts{Previous: prev}, 3))
		},
		want: 1,
	}, {
		name: "hard Delete",
		gorm: func(db *gorm.DB) error { return db.Unscoped().Delete(&Account{ID: 2}).Error },
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			return m.Delete(ctx, tx, "account", 2)
		},
		want: 1,
	}, {
		name: "Delete of many rows by WHERE",
		gorm: func(db *gorm.DB) error { return db.Unscoped().Where("id IN ?", []int64{4, 5}).Delete(&Account{}).Error },
		lib: func(ctx context.Context, tx *sql.Tx, m *cqrsync.Master[*sql.Tx]) error {
			return m.Delete(ctx, tx, "account", 4, 5)
		},
		want: 2,
	}}
	for _, s := range steps {
		if err := s.gorm(f.db); err != nil {
			t.Fatalf("%s through GORM: %v", s.name, err)
		}
		got := f.drain(t)
		f.libTx(t, func(ctx context.Context, tx *sql.Tx) error { return s.lib(ctx, tx, f.lib) })
		want := f.drain(t)
		if len(got) != s.want || len(want) != s.want {
			t.Fatalf("%s: GORM captured %d events, the library %d, want %d:\n%s\n---\n%s", s.name, len(got), len(want), s.want, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: event %d differs:\nGORM:    %s\nlibrary: %s", s.name, i, got[i], want[i])
			}
		}
	}
	// The two tables hold the same rows, revisions included.
	var g, l []Account
	if err := f.db.Unscoped().Order("id").Find(&g).Error; err != nil {
		t.Fatal(err)
	}
	if err := f.db.Table(libTable).Unscoped().Order("id").Find(&l).Error; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rowsText(g)) != fmt.Sprint(rowsText(l)) {
		t.Errorf("tables differ:\n%v\n%v", rowsText(g), rowsText(l))
	}
	// Once per GORM transaction that captured, events or not (13), but not
	// for CreateInBatches, whose transaction is db.Transaction's.
	if n := f.wakes.n.Load(); n != 13 {
		t.Errorf("the relay was woken %d times, want 13", n)
	}
}

func rowsText(rows []Account) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%d %s %d %s %v rev=%d %v", r.ID, r.Name, r.Balance, r.Status, r.DeletedAt.Valid, r.CQRSRevision, r.CQRSUpdated != nil)
	}
	return out
}

// placeholders returns a function that renders n bind parameters in
// parentheses, in the database's syntax.
func placeholders(db *gorm.DB) func(n int) string {
	return func(n int) string {
		ps := make([]string, n)
		for i := range ps {
			if db.Dialector.Name() == "postgres" {
				ps[i] = fmt.Sprintf("$%d", i+1)
			} else {
				ps[i] = "?"
			}
		}
		return "(" + strings.Join(ps, ", ") + ")"
	}
}

// RunRollback checks that a GORM transaction that rolls back, or a write
// GORM fails, publishes nothing; and that writes the plugin cannot capture
// are refused before they change anything.
func RunRollback(t *testing.T, open Opener) {
	f := newFixture(t, open, &cqrsync.MasterConfig{AutoUpdateFields: true})
	if err := f.db.Create(&Account{ID: 1, Name: "Ada"}).Error; err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	errRollback := errors.New("roll back")
	err := f.plugin.Transaction(f.db, func(tx *gorm.DB) error {
		if err := tx.Create(&Account{ID: 2, Name: "Bob"}).Error; err != nil {
			return err
		}
		if err := tx.Model(&Account{ID: 1}).Update("name", "Ada L").Error; err != nil {
			return err
		}
		if err := tx.Unscoped().Delete(&Account{ID: 1}).Error; err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Transaction: %v", err)
	}
	if err := f.db.Create(&Account{ID: 1, Name: "duplicate"}).Error; err == nil {
		t.Fatal("a duplicate key was created")
	}
	if got := f.drain(t); len(got) != 0 {
		t.Fatalf("rolled back writes published %d events: %v", len(got), got)
	}
	var n int64
	if err := f.db.Model(&Account{}).Count(&n).Error; err != nil || n != 1 {
		t.Fatalf("%d rows (%v), want 1", n, err)
	}
	// The same transaction committed publishes, and wakes the relay once.
	before := f.wakes.n.Load()
	err = f.plugin.Transaction(f.db, func(tx *gorm.DB) error {
		return cmpErr(tx.Create(&Account{ID: 2, Name: "Bob"}).Error, tx.Model(&Account{ID: 1}).Update("name", "Ada L").Error)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.drain(t); len(got) != 2 {
		t.Fatalf("committed transaction published %d events, want 2", len(got))
	}
	if d := f.wakes.n.Load() - before; d != 1 {
		t.Errorf("relay woken %d times after one transaction, want 1", d)
	}

	// A dry run runs nothing, and captures nothing.
	dry := f.db.Session(&gorm.Session{DryRun: true})
	if err := cmpErr(dry.Create(&Account{ID: 5, Name: "dry"}).Error, dry.Model(&Account{ID: 1}).Update("name", "dry").Error, dry.Delete(&Account{ID: 1}).Error); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got := f.drain(t); len(got) != 0 {
		t.Fatalf("a dry run published %d events", len(got))
	}

	refused := []struct {
		name string
		run  func() error
		want string
	}{
		{"outside a transaction", func() error {
			return f.db.Session(&gorm.Session{SkipDefaultTransaction: true}).Create(&Account{ID: 3, Name: "Cy"}).Error
		}, "outside a transaction"},
		{"table without model", func() error {
			return f.db.Table("gorm_account").Where("id = ?", 1).Updates(map[string]any{"name": "x"}).Error
		}, "without its GORM model"},
		{"model on another table", func() error {
			return f.db.Table(libTable).Create(&Account{ID: 3, Name: "Cy"}).Error
		}, "drop the Table(...) override"},
	}
	for _, r := range refused {
		err := r.run()
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: got error %v, want one saying %q", r.name, err, r.want)
		}
	}
	if err := f.db.Model(&Account{}).Count(&n).Error; err != nil || n != 2 {
		t.Fatalf("%d rows after refused writes (%v), want 2", n, err)
	}
	var a Account
	if err := f.db.First(&a, 1).Error; err != nil || a.Name != "Ada L" {
		t.Fatalf("row 1 is %+v (%v): a refused write changed it", a, err)
	}
	if got := f.drain(t); len(got) != 0 {
		t.Fatalf("refused writes published %d events", len(got))
	}
}

// ReplicaAccount is the suite's replica model: it keeps two of the
// master's fields, one under another name, and reads the master's
// custom "display" field.
type ReplicaAccount struct {
	ID      int64  `gorm:"primaryKey;autoIncrement:false"`
	Owner   string `gorm:"size:100" cqrs:"name"`
	Display string `gorm:"size:100"`
	Balance int64
	gormcqrs.Revision
}

// TableName is the replica table.
func (ReplicaAccount) TableName() string { return "replica_account" }

// AccountLog is written by the replica's custom handlers, through GORM.
type AccountLog struct {
	ID        int64 `gorm:"primaryKey"`
	AccountID int64
	Signal    string `gorm:"size:10"`
	Owner     string `gorm:"size:100"`
	Revision  int64
}

// RunReplica applies the events of GORM writes to a GORM replica model
// with custom handlers that receive the decoded struct, and checks the
// replica table and the handlers' writes.
func RunReplica(t *testing.T, open Opener) {
	f := newFixture(t, open, &cqrsync.MasterConfig{AutoUpdateFields: true})
	// The replica has a database of its own, as it would in production
	// (and its tombstones are not the master's).
	rdb := open(t, Config())
	if err := rdb.AutoMigrate(&ReplicaAccount{}, &AccountLog{}); err != nil {
		t.Fatal(err)
	}
	drv, err := gormcqrs.Driver(rdb)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := cqrsync.NewReplica(drv, nil)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := gormcqrs.ReplicaModel(rdb, &ReplicaAccount{}, "account")
	if err != nil {
		t.Fatal(err)
	}
	log := func(tx *gorm.DB, row *ReplicaAccount, e *cqrsync.ReplicaEvent) error {
		return tx.Create(&AccountLog{AccountID: row.ID, Signal: string(e.Signal), Owner: row.Owner, Revision: row.CQRSRevision}).Error
	}
	rm.OnSave = gormcqrs.Handle(rdb, log)
	rm.OnDelete = gormcqrs.Handle(rdb, log)
	if err := replica.Register(rm); err != nil {
		t.Fatal(err)
	}
	if err := replica.Check(t.Context(), drv.Pool(), "account"); err != nil {
		t.Fatal(err)
	}
	apply := func() {
		for _, body := range f.drain(t) {
			p, err := cqrsync.DecodePayload([]byte(body), Clock)
			if err != nil {
				t.Fatal(err)
			}
			err = drv.RunTx(t.Context(), func(ctx context.Context, ex sqldialect.Executor) error {
				_, err := replica.Apply(ctx, ex, p)
				return err
			})
			if err != nil {
				t.Fatalf("apply %s: %v", body, err)
			}
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.db.Create(&[]Account{{ID: 1, Name: "Ada", Balance: 5}, {ID: 2, Name: "Bob", Balance: 7}}).Error)
	apply()
	must(f.db.Model(&Account{ID: 1}).Updates(map[string]any{"name": "Ada L", "balance": 6}).Error)
	must(f.db.Unscoped().Delete(&Account{ID: 2}).Error)
	apply()
	var got []ReplicaAccount
	must(rdb.Order("id").Find(&got).Error)
	if len(got) != 1 || got[0].ID != 1 || got[0].Owner != "Ada L" || got[0].Display != "ADA L" || got[0].Balance != 6 || got[0].CQRSRevision != 1 || got[0].CQRSUpdated == nil {
		t.Fatalf("replica rows: %+v", got)
	}
	var logs []AccountLog
	must(rdb.Order("id").Find(&logs).Error)
	var text []string
	for _, l := range logs {
		text = append(text, fmt.Sprintf("%d %s %s %d", l.AccountID, l.Signal, l.Owner, l.Revision))
	}
	want := []string{"1 SAVE Ada 0", "2 SAVE Bob 0", "1 SAVE Ada L 1", "2 DELETE  1"}
	if !slices.Equal(text, want) {
		t.Fatalf("handler log:\n%q\nwant\n%q", text, want)
	}
}

// Owner has master-model Items: GORM saves them as associations, with
// upserts on their key.
type Owner struct {
	ID    int64
	Name  string `gorm:"size:100"`
	Items []Item
}

// Item is a master model with keys the database assigns.
type Item struct {
	ID      int64
	OwnerID int64
	Name    string `gorm:"size:100"`
	gormcqrs.Revision
}

// RunAssociations checks that master models GORM writes as associations
// of another model are captured: created with keys the database assigns,
// then updated through a full save of their owner.
func RunAssociations(t *testing.T, open Opener) {
	db, events := itemFixture(t, open, Config())
	owner := Owner{Name: "o", Items: []Item{{Name: "a"}, {Name: "b"}}}
	if err := db.Create(&owner).Error; err != nil {
		t.Fatal(err)
	}
	a, b := owner.Items[0].ID, owner.Items[1].ID
	if a == 0 || b == 0 {
		t.Fatalf("items without keys: %+v", owner.Items)
	}
	want := []string{fmt.Sprintf("SAVE %d 0 a", a), fmt.Sprintf("SAVE %d 0 b", b)}
	if got := events(); !slices.Equal(got, want) {
		t.Fatalf("create with associations: %q, want %q", got, want)
	}
	// The owner changes too: on MariaDB, Save of an unchanged owner affects
	// no row, and GORM then saves it again as an upsert, associations and
	// all — two writes of each item, captured as two events each.
	owner.Name, owner.Items[0].Name = "o2", "a2"
	if err := db.Session(&gorm.Session{FullSaveAssociations: true}).Save(&owner).Error; err != nil {
		t.Fatal(err)
	}
	want = []string{fmt.Sprintf("SAVE %d 1 a2", a), fmt.Sprintf("SAVE %d 1 b", b)}
	if got := events(); !slices.Equal(got, want) {
		t.Fatalf("full save with associations: %q, want %q", got, want)
	}
}

// itemFixture opens a database with Owner and Item, Item registered as a
// master model, and returns a function that drains the outbox as
// "SIGNAL pk revision name" lines.
func itemFixture(t *testing.T, open Opener, cfg *gorm.Config) (*gorm.DB, func() []string) {
	db := open(t, cfg)
	drv, err := gormcqrs.Driver(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&Owner{}, &Item{}); err != nil {
		t.Fatal(err)
	}
	master, err := cqrsync.NewMaster(drv, &cqrsync.MasterConfig{Now: func() time.Time { return Clock }})
	if err != nil {
		t.Fatal(err)
	}
	plugin := gormcqrs.New(master)
	if err := db.Use(plugin); err != nil {
		t.Fatal(err)
	}
	if err := plugin.Register(&Item{}, &cqrsync.MasterModel{CQRSID: "item"}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{sqlDB: drv.DB()}
	return db, func() []string {
		var out []string
		for _, body := range f.drain(t) {
			p, err := cqrsync.DecodePayload([]byte(body), Clock)
			if err != nil {
				t.Fatal(err)
			}
			rev, _ := p.InstanceData.Get(cqrsync.RevisionField)
			name, _ := p.InstanceData.Get("name")
			out = append(out, fmt.Sprintf("%s %v %v %v", p.SignalType, p.InstancePK, rev, name))
		}
		return out
	}
}

// RunPreparedStatements checks capture under GORM's PrepareStmt mode,
// whose transactions wrap the *sql.Tx.
func RunPreparedStatements(t *testing.T, open Opener) {
	cfg := Config()
	cfg.PrepareStmt = true
	db, events := itemFixture(t, open, cfg)
	owner := Owner{Name: "o"}
	if err := db.Create(&owner).Error; err != nil {
		t.Fatal(err)
	}
	it := Item{OwnerID: owner.ID, Name: "a"}
	if err := db.Create(&it).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Model(&it).Select("*").Updates(Item{ID: it.ID, OwnerID: owner.ID, Name: "b"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(&it).Error; err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("SAVE %d 0 a", it.ID), fmt.Sprintf("SAVE %d 1 b", it.ID), fmt.Sprintf("DELETE %d 2 <nil>", it.ID)}
	if got := events(); !slices.Equal(got, want) {
		t.Fatalf("events: %q, want %q", got, want)
	}
}

// RunConcurrentMatchPostgres checks, on PostgreSQL, a soft delete that
// another transaction races: it brings the row back and commits between
// the plugin's key read (which skips the row: its committed version is
// deleted) and GORM's UPDATE (which then sees it back and deletes it
// again). The statement must fail and roll back rather than change a row
// it did not capture.
func RunConcurrentMatchPostgres(t *testing.T, open Opener) {
	f := newFixture(t, open, &cqrsync.MasterConfig{})
	ctx := t.Context()
	if err := f.db.Create(&Account{ID: 1, Name: "Ada"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := f.db.Delete(&Account{ID: 1}).Error; err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	// The other transaction brings the row back, uncommitted for now.
	other, err := f.sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback() //nolint:errcheck // committed below
	if _, err := other.ExecContext(ctx, "UPDATE gorm_account SET deleted_at = NULL WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	// It commits right after the plugin read the keys.
	err = f.db.Callback().Delete().After("cqrsync:before_delete").Before("gorm:delete").Register("test:commit_other", commitOnce(t, other))
	if err != nil {
		t.Fatal(err)
	}
	err = f.db.Delete(&Account{ID: 1}).Error
	if err == nil || !strings.Contains(err.Error(), "retry the transaction") {
		t.Fatalf("soft delete raced by a transaction that brought the row back: error %v, want one saying to retry", err)
	}
	var a Account
	if err := f.db.First(&a, 1).Error; err != nil {
		t.Fatalf("the row is deleted after the failed soft delete: %v", err)
	}
	if got := f.drain(t); len(got) != 0 {
		t.Fatalf("the failed statement published %d events", len(got))
	}
	// Retried, it is captured.
	if err := f.db.Delete(&Account{ID: 1}).Error; err != nil {
		t.Fatal(err)
	}
	if got := f.drain(t); len(got) != 1 {
		t.Fatalf("the retried soft delete published %d events, want 1", len(got))
	}
}

// RunConcurrentUpsert checks an upsert that another transaction races: it
// inserts (and captures) the row and commits between the plugin's read of
// the existing keys and GORM's INSERT, which then updates that row. The
// upsert must publish an update past the other's revision, not a creation
// at revision 0 that replicas would ignore.
func RunConcurrentUpsert(t *testing.T, open Opener) {
	f := newFixture(t, open, &cqrsync.MasterConfig{})
	ctx := t.Context()
	other, err := f.sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback() //nolint:errcheck // committed below
	ph := placeholders(f.db)(4)
	if _, err := other.ExecContext(ctx, "INSERT INTO gorm_account (id, name, cqrs_revision, cqrs_updated) VALUES "+ph, 7, "other", 5, Clock); err != nil {
		t.Fatal(err)
	}
	err = f.db.Callback().Create().After("cqrsync:before_create").Before("gorm:create").Register("test:commit_other", commitOnce(t, other))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&[]Account{{ID: 7, Name: "upserted"}, {ID: 8, Name: "new"}}).Error; err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, body := range f.drain(t) {
		p, err := cqrsync.DecodePayload([]byte(body), Clock)
		if err != nil {
			t.Fatal(err)
		}
		rev, _ := p.InstanceData.Get(cqrsync.RevisionField)
		got = append(got, fmt.Sprintf("%v %v", p.InstancePK, rev))
	}
	if want := []string{"8 0", "7 6"}; !slices.Equal(got, want) {
		t.Fatalf("events (key revision): %q, want %q", got, want)
	}
}

// commitOnce returns a GORM callback that commits other the first time it
// runs: a concurrent transaction committing at a chosen point of a
// statement.
func commitOnce(t *testing.T, other *sql.Tx) func(*gorm.DB) {
	var once sync.Once
	return func(*gorm.DB) {
		once.Do(func() {
			if err := other.Commit(); err != nil {
				t.Error(err)
			}
		})
	}
}

// RunUpdateByKey checks updates by primary key of a model without tracked
// fields, which the plugin does not read before the UPDATE: a missing
// row, an unchanged row (MariaDB counts it as unaffected), partial
// updates, and a change of the key itself, which is refused.
func RunUpdateByKey(t *testing.T, open Opener) {
	db, events := itemFixture(t, open, Config())
	owner := Owner{Name: "o", Items: []Item{{Name: "a"}}}
	if err := db.Create(&owner).Error; err != nil {
		t.Fatal(err)
	}
	it := owner.Items[0]
	events()
	check := func(what string, err error, want ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := events(); !slices.Equal(got, want) {
			t.Fatalf("%s: events %q, want %q", what, got, want)
		}
	}
	check("update of a missing row", db.Model(&Item{ID: it.ID + 100}).Update("name", "x").Error)
	check("Save unchanged", db.Save(&it).Error, fmt.Sprintf("SAVE %d 1 a", it.ID))
	check("partial update", db.Model(&it).Update("name", "b").Error)
	check("partial update with UpdateCQRSFields", gormcqrs.UpdateCQRSFields(db).Model(&it).Update("name", "c").Error, fmt.Sprintf("SAVE %d 2 c", it.ID))
	it.Name = "d"
	check("Save", db.Save(&it).Error, fmt.Sprintf("SAVE %d 3 d", it.ID))
	id := it.ID // GORM sets the struct's key even when the UPDATE is rolled back
	err := db.Model(&it).Update("id", id+1000).Error
	if err == nil || !strings.Contains(err.Error(), "keeps its key") {
		t.Fatalf("a change of the primary key: error %v, want one saying a row keeps its key", err)
	}
	var n int64
	if err := db.Model(&Item{}).Where("id = ?", id).Count(&n).Error; err != nil || n != 1 {
		t.Fatalf("the refused key change left %d rows with the old key (%v)", n, err)
	}
	check("after the refused key change", nil)
}

// Package trigger captures the changes of master tables with database
// triggers, so that every INSERT, UPDATE and DELETE is published whoever
// writes it: psql, a migration, a service in another language, an ORM.
//
// [Install] puts triggers on a model's table (PostgreSQL, MySQL/MariaDB)
// that do in the database what the library's capture calls do in Go: a new
// row gets cqrs_revision 0 (or one past its key's tombstone), an update
// raises it by one, every write sets cqrs_updated, a delete records the
// key's tombstone; and each change writes a row image (the row as it now
// is and as it was) into cqrs_outbox, in the writer's transaction. The
// relay renders each row image into the django-cqrs event at publish time
// with the master's model registry ([cqrsync.Master.RenderOutbox], set as
// outbox.Config.Renderer): the same bytes library capture would have
// written for the change, tracked fields taken from the old row. So a
// rolled-back transaction publishes nothing, and a committed change is
// never lost, exactly as with library capture.
//
// A writer that captures through the library on a table with triggers
// (Master.Insert, UpdateRow, Create, Update, Delete) marks its statements,
// and the triggers leave them alone: one change makes one event. The mark
// belongs to the writer's transaction (on MySQL a row of
// cqrs_capture_marks, see [sqldialect.CaptureMarksTable]), so a rollback
// takes it away and it never hides a later write from the triggers. On
// PostgreSQL a plain UPDATE followed by Master.Update of the same row in
// one transaction also makes one event (the library removes the trigger's
// row image of that key); on MySQL it makes two, in revision order, which
// replicas apply one after the other. A Master reads whether a table has
// triggers with its columns (Master.Check at start, or its first capture
// on the table) and keeps it: restart services that capture through the
// library after installing or removing triggers, or until then their
// captures and the triggers both capture some changes (two events, some
// revisions skipped; replicas still converge).
//
// Install is safe on a live table: it runs in one transaction on
// PostgreSQL, and on MySQL under a write lock of the table, so writers
// wait for it and none commits uncaptured. Running it again replaces the
// triggers (after a change of the table's columns, run it again: MySQL's
// triggers name every column, and [Status] reports them as not current;
// after upgrading cqrsync, run it again too, as the triggers' text may
// have changed).
// TRUNCATE is not captured. A table has one set of capture triggers, for
// one model: installing them for a second model on the same table
// replaces the first's.
package trigger

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// Status is what a model's table has of capture triggers.
type Status struct {
	// CQRSID and Table name the model and its table.
	CQRSID string
	Table  string
	// Installed is true when the table has all the capture triggers.
	Installed bool
	// Current is true when they are the ones Install would install now;
	// false after the table's columns, the model or cqrsync changed:
	// install again.
	Current bool
	// Partial is true when only some triggers are there: install again.
	Partial bool
	// Triggers are the names of the capture triggers found.
	Triggers []string
}

// String is one line for people: the model, the table and the state.
func (s Status) String() string {
	state := "not installed"
	switch {
	case s.Installed && s.Current:
		state = "installed"
	case s.Installed:
		state = "installed, not current: run capture install again"
	case s.Partial:
		state = "partly installed: run capture install again"
	}
	return fmt.Sprintf("%s (table %s): %s", s.CQRSID, s.Table, state)
}

// Install installs or replaces the capture triggers of each model's table,
// one table per transaction. The tables must have cqrs_revision and
// cqrs_updated, and Migrate must have run (the triggers write into
// cqrs_outbox and cqrs_tombstones). A model with NoProduce gets the
// bookkeeping only. Every model is tried; the errors are joined.
func Install(ctx context.Context, db sqldialect.DB, models ...*cqrsync.MasterModel) error {
	var errs []error
	for _, mm := range models {
		err := db.RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
			p, err := params(ctx, ex, db.Dialect(), mm)
			if err != nil {
				return err
			}
			return sqldialect.InstallCaptureTriggers(ctx, ex, db.Dialect(), p)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("trigger: install on %s (%s): %w", mm.Table, mm.CQRSID, err))
		}
	}
	return errors.Join(errs...)
}

// Uninstall removes the capture triggers of each model's table; a table
// without them is left alone. Writes are then no longer captured, except
// through the library.
func Uninstall(ctx context.Context, db sqldialect.DB, models ...*cqrsync.MasterModel) error {
	var errs []error
	for _, mm := range models {
		err := db.RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
			_, err := sqldialect.UninstallCaptureTriggers(ctx, ex, db.Dialect(), mm.Table)
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("trigger: uninstall on %s (%s): %w", mm.Table, mm.CQRSID, err))
		}
	}
	return errors.Join(errs...)
}

// StatusOf reports the capture triggers of each model's table, in order.
func StatusOf(ctx context.Context, db sqldialect.DB, models ...*cqrsync.MasterModel) ([]Status, error) {
	out := make([]Status, 0, len(models))
	ex := db.Pool()
	for _, mm := range models {
		p, err := params(ctx, ex, db.Dialect(), mm)
		if err != nil {
			return out, fmt.Errorf("trigger: status of %s (%s): %w", mm.Table, mm.CQRSID, err)
		}
		st, err := sqldialect.CaptureTriggers(ctx, ex, db.Dialect(), p, mm.Table)
		if err != nil {
			return out, fmt.Errorf("trigger: status of %s (%s): %w", mm.Table, mm.CQRSID, err)
		}
		out = append(out, Status{CQRSID: mm.CQRSID, Table: mm.Table, Installed: st.Installed, Current: st.Current, Partial: st.Partial, Triggers: st.Triggers})
	}
	return out, nil
}

// params describes mm's table for the trigger SQL.
func params(ctx context.Context, ex sqldialect.Executor, d sqldialect.Dialect, mm *cqrsync.MasterModel) (*sqldialect.CaptureTriggerParams, error) {
	if mm == nil || mm.CQRSID == "" || mm.Table == "" {
		return nil, errors.New("a model needs its CQRSID and Table")
	}
	cols, err := d.TableColumns(ctx, ex, mm.Table)
	if err != nil {
		return nil, err
	}
	pk := mm.PK
	if pk == "" {
		pk = "id"
	}
	return &sqldialect.CaptureTriggerParams{CQRSID: mm.CQRSID, Table: mm.Table, PKColumn: pk, Columns: cols, NoProduce: mm.NoProduce}, nil
}

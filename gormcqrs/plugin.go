package gormcqrs

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"

	"github.com/cqrsync/cqrsync"
)

// Revision holds the two columns cqrsync keeps on master and replica
// tables. Embed it in a GORM model so that AutoMigrate creates them
// (cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated with
// microseconds); GORM reads them but never writes them, as cqrsync sets
// them when it captures or applies a change.
type Revision struct {
	// CQRSRevision is the row's revision (cqrs_revision).
	CQRSRevision int64 `gorm:"column:cqrs_revision;not null;default:0;<-:false"`
	// CQRSUpdated is the time of the row's last captured change
	// (cqrs_updated), nil before the first.
	CQRSUpdated *time.Time `gorm:"column:cqrs_updated;precision:6;<-:false"`
}

// The names of the plugin's callbacks and statement settings.
const (
	name              = "cqrsync"
	settingCQRSFields = "cqrsync:update_cqrs_fields"
	instanceState     = "cqrsync:state"
	instanceCaptured  = "cqrsync:captured"
	gormStartedTx     = "gorm:started_transaction" // set by GORM's BeginTransaction callback
)

// Plugin is the GORM plugin that captures writes to registered master
// models through a cqrsync Master. Install it with db.Use(plugin), then
// register the models with [Plugin.Register]. It is safe for concurrent
// use.
type Plugin struct {
	master *cqrsync.Master[*sql.Tx]

	mu      sync.RWMutex
	db      *gorm.DB
	byType  map[reflect.Type]*model
	byTable map[string]*model
}

// model is a registered master model.
type model struct {
	cqrsID  string
	table   string
	pk      *schema.Field
	tracked bool // the master model has TrackedFields: updates take a snapshot first
}

var _ gorm.Plugin = (*Plugin)(nil)

// New returns the plugin for master, a Master on the same database as the
// *gorm.DB it will be installed on (its driver built on the *sql.DB that
// db.DB() returns, see [Driver]). It panics if master is nil.
func New(master *cqrsync.Master[*sql.Tx]) *Plugin {
	if master == nil {
		panic("gormcqrs.New: master is nil: pass the *cqrsync.Master[*sql.Tx] of the GORM database")
	}
	return &Plugin{master: master, byType: map[reflect.Type]*model{}, byTable: map[string]*model{}}
}

// Name is the plugin's name in GORM: "cqrsync".
func (p *Plugin) Name() string { return name }

// Initialize registers the capture callbacks on db; db.Use calls it.
func (p *Plugin) Initialize(db *gorm.DB) error {
	p.mu.Lock()
	p.db = db
	p.mu.Unlock()
	cb := db.Callback()
	return errors.Join(
		cb.Create().Before("gorm:create").Register(name+":before_create", p.beforeCreate),
		cb.Create().After("gorm:after_create").Before("gorm:commit_or_rollback_transaction").Register(name+":after_create", p.afterCreate),
		cb.Create().After("gorm:commit_or_rollback_transaction").Register(name+":wake_create", p.wake),
		cb.Update().Before("gorm:update").Register(name+":before_update", p.beforeUpdate),
		cb.Update().After("gorm:after_update").Before("gorm:commit_or_rollback_transaction").Register(name+":after_update", p.afterUpdate),
		cb.Update().After("gorm:commit_or_rollback_transaction").Register(name+":wake_update", p.wake),
		cb.Delete().Before("gorm:delete").Register(name+":before_delete", p.beforeDelete),
		cb.Delete().After("gorm:after_delete").Before("gorm:commit_or_rollback_transaction").Register(name+":after_delete", p.afterDelete),
		cb.Delete().After("gorm:commit_or_rollback_transaction").Register(name+":wake_delete", p.wake),
	)
}

// Register makes value's GORM model (a pointer to its struct, e.g.
// &Account{}) a master model: it fills mm's Table and PK from the GORM
// schema when they are empty (and refuses them when they differ), registers
// mm on the master, and captures every write GORM makes to the model from
// then on. mm.CQRSID is required; every other MasterModel option
// (TrackedFields, IsSyncInstance, Serializer, Meta, …) applies as with
// hand-written capture calls. Install the plugin first (db.Use).
func (p *Plugin) Register(value any, mm *cqrsync.MasterModel) error {
	p.mu.RLock()
	db := p.db
	p.mu.RUnlock()
	if db == nil {
		return errors.New("gormcqrs: Register before db.Use(plugin): install the plugin on the *gorm.DB first")
	}
	if mm == nil {
		return errors.New("gormcqrs: Register: mm is nil: pass &cqrsync.MasterModel{CQRSID: ...}")
	}
	s, table, err := parse(db, value)
	if err != nil {
		return err
	}
	pk, err := primaryField(s)
	if err != nil {
		return err
	}
	c := *mm
	switch {
	case c.Table == "":
		c.Table = table
	case c.Table != table:
		return fmt.Errorf("gormcqrs: Register %s: MasterModel.Table is %q but GORM writes %s to %q: leave Table empty", s.Name, c.Table, s.Name, table)
	}
	switch {
	case c.PK == "":
		c.PK = pk.DBName
	case c.PK != pk.DBName:
		return fmt.Errorf("gormcqrs: Register %s: MasterModel.PK is %q but its GORM primary key is %q: leave PK empty", s.Name, c.PK, pk.DBName)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, dup := p.byType[s.ModelType]; dup {
		return fmt.Errorf("gormcqrs: %s is already registered as %q", s.Name, prev.cqrsID)
	}
	if prev, dup := p.byTable[c.Table]; dup {
		return fmt.Errorf("gormcqrs: table %s is already registered as %q", c.Table, prev.cqrsID)
	}
	if err := p.master.Register(&c); err != nil {
		return err
	}
	m := &model{cqrsID: c.CQRSID, table: c.Table, pk: pk, tracked: len(c.TrackedFields) > 0}
	p.byType[s.ModelType] = m
	p.byTable[c.Table] = m
	return nil
}

// Transaction runs fn in db.Transaction and, when it commits, wakes the
// master's relay (Master.Committed), so the events fn captured are
// published at once. opts are db.Transaction's.
func (p *Plugin) Transaction(db *gorm.DB, fn func(tx *gorm.DB) error, opts ...*sql.TxOptions) error {
	if err := db.Transaction(fn, opts...); err != nil {
		return err
	}
	p.master.Committed()
	return nil
}

// UpdateCQRSFields marks the partial updates of the returned session as
// synced changes (django-cqrs's save(update_fields=..., update_cqrs_fields=True)):
//
//	gormcqrs.UpdateCQRSFields(db).Model(&acc).Update("name", "Ada")
func UpdateCQRSFields(db *gorm.DB) *gorm.DB { return db.Set(settingCQRSFields, true) }

// parse returns the GORM schema of value and the table GORM writes it to.
func parse(db *gorm.DB, value any) (*schema.Schema, string, error) {
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(value); err != nil {
		return nil, "", fmt.Errorf("gormcqrs: %T is not a GORM model: %w", value, err)
	}
	return stmt.Schema, stmt.Table, nil
}

// primaryField returns the model's single primary key field.
func primaryField(s *schema.Schema) (*schema.Field, error) {
	if len(s.PrimaryFields) != 1 {
		return nil, fmt.Errorf("gormcqrs: %s has %d primary key fields: cqrsync captures models with one primary key column", s.Name, len(s.PrimaryFields))
	}
	return s.PrimaryFields[0], nil
}

// registered returns the master model a statement writes, nil when it
// writes none. A statement that writes a registered table other than
// through its model (db.Table("account")) is an error: it could not be
// captured.
func (p *Plugin) registered(db *gorm.DB) *model {
	stmt := db.Statement
	p.mu.RLock()
	defer p.mu.RUnlock()
	var m *model
	if stmt.Schema != nil {
		m = p.byType[stmt.Schema.ModelType]
	}
	if m == nil {
		if other := p.byTable[stmt.Table]; other != nil {
			_ = db.AddError(fmt.Errorf("gormcqrs: this statement writes table %s, the master model %q, without its GORM model: write through the registered model (db.Model(&T{})) so that cqrsync captures the change", stmt.Table, other.cqrsID))
		}
		return nil
	}
	if stmt.Table != m.table {
		_ = db.AddError(fmt.Errorf("gormcqrs: %s is registered as %q on table %s, and this statement writes it to table %s: drop the Table(...) override", stmt.Schema.Name, m.cqrsID, m.table, stmt.Table))
		return nil
	}
	return m
}

// tx returns the *sql.Tx the statement runs in, or records an error: a
// capture outside a transaction could commit the change without its event.
func (p *Plugin) tx(db *gorm.DB, m *model) *sql.Tx {
	switch c := db.Statement.ConnPool.(type) {
	case *sql.Tx:
		return c
	case *gorm.PreparedStmtTX:
		if tx, ok := c.Tx.(*sql.Tx); ok {
			return tx
		}
	}
	_ = db.AddError(fmt.Errorf("gormcqrs: a write to %q runs outside a transaction (SkipDefaultTransaction is on): wrap it in db.Transaction, or turn SkipDefaultTransaction off, so that its event commits with it", m.cqrsID))
	return nil
}

// state carries what a before-callback read to its after-callback.
type state struct {
	tx       *sql.Tx
	keys     []any           // update, delete: the rows the statement changes
	existing map[string]bool // upsert: the keys that were there before
	prev     *cqrsync.Snapshot
	upsert   bool // create: an upsert that updates the rows it finds
	// update by primary key alone: keys are the statement's, not read yet;
	// conds find them after the UPDATE if it reports fewer rows
	unread  bool
	conds   []clause.Expression
	deleted bool // delete: Master.Delete already removed the rows
}

func (p *Plugin) beforeCreate(db *gorm.DB) {
	m, st := p.begin(db)
	if st == nil {
		return
	}
	db.InstanceSet(instanceState, st)
	oc, upsert := onConflict(db)
	if !upsert {
		return
	}
	// Read before the write: dialects rewrite the clause (MySQL's DoNothing
	// becomes an update of the key to itself).
	st.upsert = doesUpdate(oc)
	keys, zero := p.keysOf(db, m)
	if zero > 0 && !onKey(oc, m) {
		// A row without its key can only be a new row when the conflict is
		// on the key (GORM's association saves); on another column it may
		// update a row whose key the plugin cannot know before.
		_ = db.AddError(fmt.Errorf("gormcqrs: an upsert (clause.OnConflict) of %q on other columns than its primary key needs the primary key of every row, to tell inserted rows from updated ones: %d rows have none", m.cqrsID, zero))
		return
	}
	// Every row the INSERT may meet, soft-deleted ones included: an upsert
	// updates them too (Save falls back to one for a soft-deleted row).
	existing, err := p.selectKeys(db, m, []clause.Expression{inKeys(m, keys)}, keyRead{unscoped: true})
	if db.AddError(err) != nil {
		return
	}
	st.existing = make(map[string]bool, len(existing))
	for _, k := range existing {
		st.existing[keyString(k)] = true
	}
	if m.tracked && len(existing) > 0 && st.upsert {
		st.prev, err = p.master.Snapshot(db.Statement.Context, st.tx, m.cqrsID, existing...)
		_ = db.AddError(err)
	}
}

func (p *Plugin) afterCreate(db *gorm.DB) {
	st := p.state(db)
	if st == nil {
		return
	}
	m := p.registered(db)
	keys, _ := p.keysOf(db, m)
	ctx := db.Statement.Context
	if st.existing == nil {
		p.captured(db, p.master.Create(ctx, st.tx, m.cqrsID, keys...))
		return
	}
	// A row that a concurrent transaction inserted after the read above,
	// the INSERT met and updated (or, DoNothing, left alone): it was
	// captured before (cqrs_updated is set, and a new row has none), so it
	// is not a creation, whose revision 0 replicas would ignore.
	var fresh []any
	for _, k := range keys {
		if !st.existing[keyString(k)] {
			fresh = append(fresh, k)
		}
	}
	if len(fresh) > 0 {
		captured := clause.Expr{SQL: "? IS NOT NULL", Vars: []any{clause.Column{Table: clause.CurrentTable, Name: cqrsync.UpdatedField}}}
		met, err := p.selectKeys(db, m, []clause.Expression{inKeys(m, fresh), captured}, keyRead{lock: true, unscoped: true})
		if db.AddError(err) != nil {
			return
		}
		for _, k := range met {
			st.existing[keyString(k)] = true
		}
	}
	var created, updated []any
	for _, k := range keys {
		if st.existing[keyString(k)] {
			updated = append(updated, k)
		} else {
			created = append(created, k)
		}
	}
	if len(created) > 0 {
		p.captured(db, p.master.Create(ctx, st.tx, m.cqrsID, created...))
	}
	if len(updated) > 0 && st.upsert && db.Error == nil {
		p.captured(db, p.master.UpdateWith(ctx, st.tx, m.cqrsID, &cqrsync.UpdateOpts{Previous: st.prev}, updated...))
	}
}

func (p *Plugin) beforeUpdate(db *gorm.DB) {
	m, st := p.begin(db)
	if st != nil {
		// Without tracked fields there is no snapshot to take: an update by
		// primary key need not read its key first.
		p.readTargets(db, m, st, m.tracked, !m.tracked)
	}
}

// readUpdatedKeys reads, after an UPDATE by primary key alone, which of
// its keys it updated, unless it reported one row per key: a missing row
// (or, on MariaDB, an unchanged one) makes the count fall short.
func (p *Plugin) readUpdatedKeys(db *gorm.DB, m *model, st *state) error {
	if !st.unread || db.RowsAffected == int64(len(st.keys)) {
		return nil
	}
	keys, err := p.selectKeys(db, m, st.conds, keyRead{lock: true, unscoped: db.Statement.Unscoped})
	st.keys = keys
	return err
}

func (p *Plugin) afterUpdate(db *gorm.DB) {
	st := p.state(db)
	if st == nil {
		return
	}
	m := p.registered(db)
	if db.AddError(p.readUpdatedKeys(db, m, st)) != nil || !p.changedKnownRows(db, m, st) {
		return
	}
	if k, ok := assignedKey(db, m); ok && (len(st.keys) != 1 || keyString(k) != keyString(st.keys[0])) {
		_ = db.AddError(fmt.Errorf("gormcqrs: the UPDATE of %q sets its primary key %s: a row keeps its key on replicas; delete it and create another", m.cqrsID, m.pk.DBName))
		return
	}
	opts := &cqrsync.UpdateOpts{Previous: st.prev}
	if !slices.Contains(db.Statement.Selects, "*") {
		// A partial update: django-cqrs's save(update_fields=...).
		opts.Fields = updatedColumns(db)
		if v, ok := db.Get(settingCQRSFields); ok {
			opts.UpdateCQRSFields, _ = v.(bool)
		}
	}
	if len(st.keys) > 0 && db.RowsAffected == 0 {
		// MySQL counts rows whose values did not change as unaffected;
		// they were saved all the same, and Save must not insert them again.
		db.RowsAffected = int64(len(st.keys))
	}
	p.captured(db, p.master.UpdateWith(db.Statement.Context, st.tx, m.cqrsID, opts, st.keys...))
}

func (p *Plugin) beforeDelete(db *gorm.DB) {
	m, st := p.begin(db)
	if st == nil {
		return
	}
	soft := softDelete(db)
	if !p.readTargets(db, m, st, soft && m.tracked, false) || soft || len(st.keys) == 0 {
		return
	}
	// A hard delete: Master.Delete reads the rows for the events, deletes
	// them and records their tombstones; GORM's DELETE then finds nothing
	// left to delete among them.
	st.deleted = true
	p.captured(db, p.master.Delete(db.Statement.Context, st.tx, m.cqrsID, st.keys...))
}

// begin starts the capture of a statement that writes a registered model
// in a transaction; st is nil when there is nothing to capture (or the
// statement failed).
func (p *Plugin) begin(db *gorm.DB) (m *model, st *state) {
	if db.Error != nil || db.DryRun {
		return nil, nil // DryRun builds the SQL and runs nothing
	}
	if m = p.registered(db); m == nil {
		return nil, nil
	}
	tx := p.tx(db, m)
	if tx == nil {
		return nil, nil
	}
	return m, &state{tx: tx}
}

// readTargets reads the keys of the rows an UPDATE or DELETE is about to
// change (see targetKeys for byKey), and with snapshot their values (for
// tracked fields), and keeps them for the after-callback. It reports
// whether it did.
func (p *Plugin) readTargets(db *gorm.DB, m *model, st *state, snapshot, byKey bool) bool {
	keys, ok, err := p.targetKeys(db, m, st, byKey)
	if db.AddError(err) != nil || !ok {
		return false
	}
	st.keys = keys
	if snapshot && len(keys) > 0 {
		st.prev, err = p.master.Snapshot(db.Statement.Context, st.tx, m.cqrsID, keys...)
		if db.AddError(err) != nil {
			return false
		}
	}
	db.InstanceSet(instanceState, st)
	return true
}

func (p *Plugin) afterDelete(db *gorm.DB) {
	st := p.state(db)
	if st == nil {
		return
	}
	m := p.registered(db)
	if st.deleted {
		if db.RowsAffected > 0 {
			_ = db.AddError(fmt.Errorf("gormcqrs: DELETE of %q removed %d rows beyond the %d read before it (a concurrent transaction made a row match its WHERE): retry the transaction", m.cqrsID, db.RowsAffected, len(st.keys)))
			return
		}
		db.RowsAffected = int64(len(st.keys))
		return
	}
	if !p.changedKnownRows(db, m, st) {
		return
	}
	// A soft delete is an update of deleted_at: a full save, as Django's.
	p.captured(db, p.master.UpdateWith(db.Statement.Context, st.tx, m.cqrsID, &cqrsync.UpdateOpts{Previous: st.prev}, st.keys...))
}

// changedKnownRows reports whether the statement's change is to be captured
// (it succeeded and changed rows), and fails the statement when it changed
// more rows than were read before it: a row inserted by a concurrent
// transaction between the two statements, whose change could not be
// captured.
func (p *Plugin) changedKnownRows(db *gorm.DB, m *model, st *state) bool {
	if db.Error != nil {
		return false
	}
	// Even with no key read: on PostgreSQL a row that a concurrent
	// transaction was changing is skipped by the read (its committed
	// version does not match) and then changed by the statement (which
	// sees the new version).
	if db.RowsAffected > int64(len(st.keys)) {
		_ = db.AddError(fmt.Errorf("gormcqrs: the statement changed %d rows of %q but %d were read before it (a concurrent transaction made a row match its WHERE): retry the transaction", db.RowsAffected, m.cqrsID, len(st.keys)))
		return false
	}
	return len(st.keys) > 0
}

// state returns the statement's capture state when its write succeeded.
func (p *Plugin) state(db *gorm.DB) *state {
	v, ok := db.InstanceGet(instanceState)
	if !ok || db.Error != nil {
		return nil
	}
	st, _ := v.(*state)
	return st
}

// captured records a capture's error on the statement (GORM then rolls its
// transaction back), or notes that it captured, for wake.
func (p *Plugin) captured(db *gorm.DB, err error) {
	if db.AddError(err) == nil {
		db.InstanceSet(instanceCaptured, true)
	}
}

// wake tells the relay after GORM committed a transaction it began itself
// for a statement that captured.
func (p *Plugin) wake(db *gorm.DB) {
	_, captured := db.InstanceGet(instanceCaptured)
	_, began := db.InstanceGet(gormStartedTx)
	if captured && began && db.Error == nil {
		p.master.Committed()
	}
}

// onConflict returns the statement's ON CONFLICT clause, if it has one.
func onConflict(db *gorm.DB) (clause.OnConflict, bool) {
	c, ok := db.Statement.Clauses["ON CONFLICT"]
	if !ok {
		return clause.OnConflict{}, false
	}
	oc, ok := c.Expression.(clause.OnConflict)
	return oc, ok
}

// doesUpdate reports whether an upsert updates the rows it finds.
func doesUpdate(oc clause.OnConflict) bool {
	return !oc.DoNothing && (oc.UpdateAll || len(oc.DoUpdates) > 0)
}

// onKey reports whether an upsert's conflict target is the model's primary
// key (or, for DoNothing on PostgreSQL and SQLite, any conflict at all,
// where a row left alone keeps a zero key).
func onKey(oc clause.OnConflict, m *model) bool {
	if oc.OnConstraint != "" {
		return false
	}
	for _, c := range oc.Columns {
		if c.Name != m.pk.DBName {
			return false
		}
	}
	return true
}

// softDelete reports whether the statement's DELETE is GORM's soft delete
// (an UPDATE of a gorm.DeletedAt field).
func softDelete(db *gorm.DB) bool {
	if db.Statement.Unscoped || db.Statement.Schema == nil {
		return false
	}
	for _, c := range db.Statement.Schema.DeleteClauses {
		if _, ok := c.(gorm.SoftDeleteDeleteClause); ok {
			return true
		}
	}
	return false
}

// updatedColumns names the columns a partial update sets, as far as the
// statement says: its Select, or its map's keys (GORM's SET clause is gone
// by the time the after-callback runs).
func updatedColumns(db *gorm.DB) []string {
	cols := []string{}
	if sel := db.Statement.Selects; len(sel) > 0 {
		return append(cols, sel...)
	}
	if dest, ok := db.Statement.Dest.(map[string]any); ok {
		for k := range dest {
			cols = append(cols, k)
		}
		slices.Sort(cols)
	}
	return cols
}

// assignedKey returns the primary key value an UPDATE sets, if it sets
// one: a map's entry (by column or field name), or the key of a struct
// other than the model.
func assignedKey(db *gorm.DB, m *model) (any, bool) {
	switch dest := db.Statement.Dest.(type) {
	case map[string]any:
		for _, name := range []string{m.pk.DBName, m.pk.Name} {
			if v, ok := dest[name]; ok {
				return v, true
			}
		}
		return nil, false
	}
	if db.Statement.Dest == db.Statement.Model {
		return nil, false // the model's own key is the WHERE, not a SET
	}
	v := reflect.Indirect(reflect.ValueOf(db.Statement.Dest))
	if v.Kind() != reflect.Struct || v.Type() != m.pk.StructField.Type && v.Type() != db.Statement.Schema.ModelType {
		return nil, false
	}
	k, zero := m.pk.ValueOf(db.Statement.Context, v)
	return k, !zero
}

// keysOf returns the non-zero primary keys of the rows the statement
// carries (a struct, or a slice or array of them), in order, and how many
// rows have none.
func (p *Plugin) keysOf(db *gorm.DB, m *model) (keys []any, zero int) {
	rv := reflect.Indirect(db.Statement.ReflectValue)
	add := func(v reflect.Value) {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return
		}
		k, isZero := m.pk.ValueOf(db.Statement.Context, v)
		if isZero {
			zero++
			return
		}
		keys = append(keys, k)
	}
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := range rv.Len() {
			add(rv.Index(i))
		}
	case reflect.Struct:
		add(rv)
	case reflect.Map:
		_ = db.AddError(fmt.Errorf("gormcqrs: Create of %q from a map is not captured (its keys cannot be read back): create from the struct", m.cqrsID))
	}
	return keys, zero
}

// targetKeys reads, inside the statement's transaction, the keys of the
// rows an UPDATE or DELETE is about to change: the statement's WHERE, the
// primary keys of the value it carries, and the soft-delete condition
// GORM adds, locked where the database can. ok is false when the
// statement has no condition at all, which GORM refuses on its own. With
// byKey, a statement whose only condition is one row's primary key (Save,
// Updates of a loaded row) reads nothing: its key is returned as it is,
// marked unread in st for readUpdatedKeys.
func (p *Plugin) targetKeys(db *gorm.DB, m *model, st *state, byKey bool) (keys []any, ok bool, err error) {
	stmt := db.Statement
	var conds []clause.Expression
	if c, has := stmt.Clauses["WHERE"]; has {
		if w, isWhere := c.Expression.(clause.Where); isWhere {
			conds = append(conds, w.Exprs...)
		}
	}
	withWhere := len(conds) > 0
	values := []reflect.Value{stmt.ReflectValue}
	if stmt.Model != nil && stmt.Dest != stmt.Model {
		values = append(values, reflect.ValueOf(stmt.Model))
	}
	for _, v := range values {
		if !v.IsValid() {
			continue
		}
		_, pkValues := schema.GetIdentityFieldValuesMap(stmt.Context, v, stmt.Schema.PrimaryFields)
		if column, vals := schema.ToQueryValues(stmt.Table, stmt.Schema.PrimaryFieldDBNames, pkValues); len(vals) > 0 {
			conds = append(conds, clause.IN{Column: column, Values: vals})
			withWhere = true
		}
	}
	if !withWhere && !db.AllowGlobalUpdate {
		return nil, false, nil
	}
	if in, isIn := lastIn(conds); byKey && len(conds) == 1 && isIn && len(in.Values) == 1 {
		st.unread, st.conds = true, conds
		return in.Values, true, nil
	}
	keys, err = p.selectKeys(db, m, conds, keyRead{lock: true, unscoped: stmt.Unscoped})
	return keys, err == nil, err
}

// lastIn returns the last condition when it is an IN of single values.
func lastIn(conds []clause.Expression) (clause.IN, bool) {
	if len(conds) == 0 {
		return clause.IN{}, false
	}
	in, ok := conds[len(conds)-1].(clause.IN)
	if ok {
		for _, v := range in.Values {
			if _, multi := v.([]any); multi {
				return clause.IN{}, false
			}
		}
	}
	return in, ok
}

// keyRead says how selectKeys reads.
type keyRead struct {
	lock     bool // FOR UPDATE, where the database has it
	unscoped bool // soft-deleted rows too
}

// selectKeys reads the keys of the model's rows that match conds inside
// the statement's transaction, in key order.
func (p *Plugin) selectKeys(db *gorm.DB, m *model, conds []clause.Expression, how keyRead) ([]any, error) {
	stmt := db.Statement
	q := db.Session(&gorm.Session{NewDB: true, SkipHooks: true, Context: stmt.Context})
	q.Statement.ConnPool = stmt.ConnPool
	if how.unscoped {
		q = q.Unscoped()
	}
	q = q.Model(reflect.New(stmt.Schema.ModelType).Interface())
	if len(conds) > 0 {
		q = q.Clauses(clause.Where{Exprs: conds})
	}
	if how.lock && db.Dialector.Name() != "sqlite" {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	// In key order: the events of a multi-row change come out in a
	// repeatable order, and rows are locked in one order everywhere.
	q = q.Order(clause.OrderByColumn{Column: clause.Column{Table: clause.CurrentTable, Name: m.pk.DBName}})
	dest := reflect.New(reflect.SliceOf(m.pk.FieldType))
	if err := q.Pluck(m.pk.DBName, dest.Interface()).Error; err != nil {
		return nil, fmt.Errorf("gormcqrs: read the keys of the %q rows the statement changes: %w", m.cqrsID, err)
	}
	list := dest.Elem()
	keys := make([]any, list.Len())
	for i := range keys {
		keys[i] = list.Index(i).Interface()
	}
	return keys, nil
}

// inKeys is the condition "primary key IN keys"; with no keys it matches
// nothing.
func inKeys(m *model, keys []any) clause.Expression {
	if len(keys) == 0 {
		return clause.Expr{SQL: "1 = 0"}
	}
	return clause.IN{Column: clause.Column{Table: clause.CurrentTable, Name: m.pk.DBName}, Values: keys}
}

// keyString identifies a key across the types it comes back as.
func keyString(k any) string {
	for {
		v := reflect.ValueOf(k)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			break
		}
		k = v.Elem().Interface()
	}
	return fmt.Sprint(k)
}

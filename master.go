package cqrsync

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// NoExpiry, as a MessageTTL, publishes events that never expire
// ("expires": null), like django-cqrs's CQRS_MESSAGE_TTL = None.
const NoExpiry time.Duration = -1

// checkMessageTTL refuses a message TTL the relay cannot carry to publish
// time: a negative one other than NoExpiry, or one with a fraction of a
// second (expires has whole seconds, and the relay reads the TTL back from
// it).
func checkMessageTTL(field string, ttl time.Duration) error {
	switch {
	case ttl == 0 || ttl == NoExpiry:
		return nil
	case ttl < 0:
		return fmt.Errorf("cqrsync: %s is %v: set a positive TTL, 0 for the default or NoExpiry for events that never expire", field, ttl)
	case ttl%time.Second != 0:
		return fmt.Errorf("cqrsync: %s is %v: set whole seconds (expires has no fractions, as django-cqrs's CQRS_MESSAGE_TTL)", field, ttl)
	}
	return nil
}

// MasterModel registers a master table under a CQRS ID. Its rows are
// published as events whenever a capture call names them.
type MasterModel struct {
	// CQRSID is the model's name on the wire, the same on master and
	// replicas (e.g. "account"). Required; no '.', '*' or '#'.
	CQRSID string
	// Table is the master table. Required. It must have the columns
	// cqrs_revision (integer, default 0) and cqrs_updated (timestamp).
	Table string
	// PK is the primary key column. Default "id".
	PK string
	// Fields lists the columns sent in instance_data, in order; the primary
	// key must be among them, and cqrs_revision and cqrs_updated are
	// appended (django-cqrs's CQRS_FIELDS). Nil sends every column of the
	// table, in table order.
	Fields []string
	// FieldNames renames columns on the wire: column → the key it has in
	// instance_data and previous_data, in every event, dump and SYNC. A
	// Django peer names a foreign key by its field, not its column: a
	// column owner_id that Django models as the field owner needs
	// {"owner_id": "owner"}, or a Django replica drops it. PK, Fields,
	// TrackedFields, Types and filters keep naming columns, and
	// IsSyncInstance, Meta, Serializer and CustomDeleteData see column
	// names. A Serializer builds instance_data itself: FieldNames then
	// renames only previous_data.
	FieldNames map[string]string
	// Types declares the value type of columns whose SQL type does not say
	// it (on SQLite, a date or a UUID stored as TEXT, a decimal as NUMERIC).
	// Columns not listed get the type their declared SQL type maps to.
	Types map[string]ValueType
	// NoProduce turns publishing off for this model (django-cqrs's
	// CQRS_PRODUCE = False): capture calls still bump revisions.
	NoProduce bool
	// IsSyncInstance, when set, is asked for every captured row (all
	// columns, as wire values); a row it refuses publishes nothing — no
	// SAVE, DELETE or SYNC (django-cqrs's is_sync_instance).
	IsSyncInstance func(row Object) bool
	// Meta, when set, returns the event's meta object (django-cqrs's
	// get_cqrs_meta); it overrides MasterConfig.Meta. Nil results send {}.
	Meta MetaFunc
	// MessageTTL overrides MasterConfig.MessageTTL for this model: 0 keeps
	// the master's, NoExpiry never expires; whole seconds.
	MessageTTL time.Duration
	// TrackedFields are the columns whose previous values are sent in
	// previous_data (django-cqrs's CQRS_TRACKED_FIELDS): on create, every
	// tracked column that is not null, as null; on update, the tracked
	// columns that changed, with their old values ({} if none did) — which
	// needs UpdateOpts.Previous from Master.Snapshot, taken before the
	// change. Keys are column names.
	TrackedFields []string
	// Serializer, when set, builds instance_data (django-cqrs's
	// CQRS_SERIALIZER) for a batch of rows at once — all columns, as wire
	// values — so related rows are read with one query per batch, inside the
	// capture's transaction (never stale). It returns one Object per row, in
	// order; cqrs_revision and cqrs_updated are appended. It replaces Fields.
	Serializer func(ctx context.Context, ex sqldialect.Executor, rows []Object) ([]Object, error)
	// CustomDeleteData, when set, adds "custom": {...} to a DELETE's
	// instance_data (django-cqrs's get_custom_cqrs_delete_data).
	CustomDeleteData func(ctx context.Context, row Object) (Object, error)
}

// MetaFunc computes an event's meta object from the row it describes: all
// columns, as wire values (for a DELETE, the row as it was, with the
// DELETE's cqrs_revision and cqrs_updated).
type MetaFunc func(ctx context.Context, signal SignalType, row Object) (Object, error)

// CorrelationFunc returns the correlation ID of an event, "" for none
// (django-cqrs's correlation_function). queue is the target queue of a
// direct SYNC, "" for a broadcast.
type CorrelationFunc func(ctx context.Context, signal SignalType, cqrsID string, pk any, queue string) string

// MasterConfig configures a [Master].
type MasterConfig struct {
	// Logger receives debug logs of captured events. Default slog.Default().
	Logger *slog.Logger
	// MessageTTL is how long an event stays valid after it is published
	// ("expires", set by the relay at publish time as django-cqrs does), in
	// whole seconds. Default DefaultMessageTTL (one day, as django-cqrs);
	// NoExpiry never. Other negative values are refused.
	MessageTTL time.Duration
	// Meta is the default meta function of models without their own
	// (django-cqrs's settings-level meta_function). Nil sends {}.
	Meta MetaFunc
	// CorrelationID, when set, fills every event's correlation_id.
	CorrelationID CorrelationFunc
	// AutoUpdateFields makes partial updates (UpdateOpts.Fields) count as
	// synced changes (django-cqrs's CQRS_AUTO_UPDATE_FIELDS). Default false.
	AutoUpdateFields bool
	// Relay, when set, is woken after the caller's transaction commits: by
	// [RunTx], and by [Master.Committed] for callers that commit
	// themselves. Pass the *outbox.Relay of this process; the relay then
	// claims once per commit instead of polling.
	Relay Waker
	// Notify is called inside the caller's transaction after every capture
	// that wrote outbox rows, before the rows are visible; the relay's
	// Notify then polls quickly for a moment to see them commit. It is kept
	// for existing callers: prefer Relay.
	Notify func()
	// Hooks, when set, observes every capture call (see package hook). Nil
	// costs nothing.
	Hooks hook.Hooks
	// Propagator, when set, injects values of the capturing call's context
	// (a trace context) into the headers stored with each event; a
	// consumer's ReplicaConfig.Propagator extracts them into its handlers'
	// context. Events carry their correlation ID as a header too.
	Propagator hook.Propagator
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Outbox is where capture writes events: OutboxTable (the default,
	// "" too), the cqrs_outbox table, which an outbox.Relay drains; or
	// OutboxWAL, PostgreSQL's write-ahead log only
	// (pg_logical_emit_message in the caller's transaction), which a WAL
	// relay streams from a logical replication slot (package outbox/pgwal;
	// docs/wal.md). OutboxWAL needs PostgreSQL with wal_level = logical;
	// the events and their bytes on the wire are the same either way.
	Outbox OutboxMode
	// ResendQueue, when set, is the queue where this master's [Resender]
	// takes resend requests: every event carries it in the
	// HeaderResendQueue header (beside the body, which does not change), so
	// cqrsync replicas that see a gap in a key's revisions, or dead-letter
	// its event, ask for the key again. Django replicas ignore the header.
	// Empty: no event carries it, and no replica asks.
	ResendQueue string
}

// OutboxMode says where a Master writes its events; see MasterConfig.Outbox.
type OutboxMode string

// The outbox modes.
const (
	// OutboxTable writes events into the cqrs_outbox table (every
	// database).
	OutboxTable OutboxMode = "table"
	// OutboxWAL writes events into PostgreSQL's write-ahead log as logical
	// decoding messages, for a WAL relay (package outbox/pgwal): no outbox
	// row to insert, claim and delete.
	OutboxWAL OutboxMode = "wal"
)

// ParseOutboxMode returns the mode named s ("table" or "wal"; "" is
// "table").
func ParseOutboxMode(s string) (OutboxMode, error) {
	switch OutboxMode(s) {
	case "", OutboxTable:
		return OutboxTable, nil
	case OutboxWAL:
		return OutboxWAL, nil
	}
	return "", fmt.Errorf("cqrsync: outbox %q: use \"table\" (the cqrs_outbox table, every database) or \"wal\" (PostgreSQL's write-ahead log)", s)
}

// Waker is woken when a transaction that captured events has committed; an
// *outbox.Relay is one.
type Waker interface {
	// Wake asks for a look at the outbox now. It must not block.
	Wake()
}

// Committed tells the Relay of MasterConfig that a transaction which
// captured events has committed, so it publishes them now. Call it after
// your own Commit (RunTx calls it for you); without MasterConfig.Relay it
// does nothing. Calling it after a transaction that captured nothing costs
// one claim query in the relay.
func (m *Master[TTx]) Committed() {
	if m.cfg.Relay != nil {
		m.cfg.Relay.Wake()
	}
}

// RunTx runs fn in a transaction of db and commits it, or rolls it back if
// fn returns an error or panics; after the commit it wakes the master's
// relay (see [Master.Committed]), so the events captured in fn are
// published at once.
func RunTx(ctx context.Context, db *sql.DB, m *Master[*sql.Tx], fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cqrsync: begin: %w", err)
	}
	ended := false
	defer func() {
		if !ended { // fn failed or panicked
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	ended = true // Commit ends the transaction, whether it succeeds or not
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cqrsync: commit: %w", err)
	}
	m.Committed()
	return nil
}

// Master captures changes of registered master tables into the outbox,
// inside the caller's transaction. TTx is the transaction type of its
// driver: *sql.Tx for sqldialect/databasesql, pgx.Tx for sqldialect/pgxv5.
//
// # Visibility
//
// A capture call writes its outbox rows in the caller's transaction, so an
// event exists exactly when the change does: it becomes visible to the relay
// when the transaction commits, and a rollback removes it with the change —
// nothing is published for a rolled-back transaction, and nothing committed
// is lost if the broker is down or the process dies right after commit. The
// payload is built inside the transaction from the row as it stands there,
// so it is never stale.
//
// Methods are safe for concurrent use.
type Master[TTx any] struct {
	cfg     MasterConfig
	drv     sqldialect.Driver[TTx]
	dialect captureStore
	tables  tableCache

	mu     sync.RWMutex
	models map[string]*MasterModel
}

// NewMaster returns a Master on the master database drv: a driver from
// sqldialect/databasesql (transactions of type *sql.Tx) or
// sqldialect/pgxv5 (pgx.Tx). Its capture calls take the caller's
// transactions of that type; its dialect renders every statement.
func NewMaster[TTx any](drv sqldialect.Driver[TTx], cfg *MasterConfig) (*Master[TTx], error) {
	if drv == nil {
		return nil, errors.New("cqrsync: NewMaster: drv is nil: pass the master database's driver, e.g. databasesql.New(db, sqldialect.SQLite())")
	}
	if cfg == nil {
		cfg = &MasterConfig{}
	}
	c := *cfg
	if err := checkMessageTTL("MasterConfig.MessageTTL", c.MessageTTL); err != nil {
		return nil, err
	}
	if c.ResendQueue != "" && !validName(c.ResendQueue) {
		return nil, fmt.Errorf("cqrsync: MasterConfig.ResendQueue %q: set a queue name without '.', '*', '#' or spaces", c.ResendQueue)
	}
	c.Logger = cmp.Or(c.Logger, slog.Default())
	c.MessageTTL = cmp.Or(c.MessageTTL, DefaultMessageTTL)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Notify == nil {
		c.Notify = func() {}
	}
	d := drv.Dialect()
	mode, err := ParseOutboxMode(string(c.Outbox))
	if err != nil {
		return nil, err
	}
	if mode == OutboxWAL && d.Name() != "postgres" {
		return nil, fmt.Errorf("cqrsync: MasterConfig.Outbox is %q, but the database is %s: the write-ahead log outbox needs PostgreSQL; use %q", OutboxWAL, d.Name(), OutboxTable)
	}
	c.Outbox = mode
	return &Master[TTx]{cfg: c, drv: drv, dialect: d, tables: tableCache{dialect: d}, models: map[string]*MasterModel{}}, nil
}

// DB returns the master database's driver, as passed to NewMaster.
func (m *Master[TTx]) DB() sqldialect.Driver[TTx] { return m.drv }

// Register adds a master model. It reports every problem with the model at
// once.
func (m *Master[TTx]) Register(model *MasterModel) error {
	mm := *model
	mm.PK = cmp.Or(mm.PK, "id")
	var errs []error
	if !validName(mm.CQRSID) {
		errs = append(errs, fmt.Errorf("cqrsync: MasterModel.CQRSID %q: set a name without '.', '*', '#' or spaces", mm.CQRSID))
	}
	if mm.Table == "" {
		errs = append(errs, fmt.Errorf("cqrsync: MasterModel %q: Table is empty", mm.CQRSID))
	}
	if err := checkMessageTTL(fmt.Sprintf("MasterModel %q: MessageTTL", mm.CQRSID), mm.MessageTTL); err != nil {
		errs = append(errs, err)
	}
	if mm.Fields != nil {
		if !slices.Contains(mm.Fields, mm.PK) {
			errs = append(errs, fmt.Errorf("cqrsync: MasterModel %q: Fields must include the primary key %q", mm.CQRSID, mm.PK))
		}
		mm.Fields = slices.DeleteFunc(slices.Clone(mm.Fields), func(f string) bool { return f == RevisionField || f == UpdatedField })
	}
	errs = append(errs, checkFieldNames(&mm)...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.models[mm.CQRSID]; dup {
		errs = append(errs, fmt.Errorf("cqrsync: MasterModel %q is already registered", mm.CQRSID))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m.models[mm.CQRSID] = &mm
	return nil
}

// checkFieldNames reports FieldNames that would make two keys of
// instance_data one, or rename the version columns.
func checkFieldNames(mm *MasterModel) []error {
	var errs []error
	owner := map[string]string{} // wire name → column
	for _, col := range slices.Sorted(maps.Keys(mm.FieldNames)) {
		name := mm.FieldNames[col]
		switch {
		case col == RevisionField || col == UpdatedField || name == RevisionField || name == UpdatedField:
			errs = append(errs, fmt.Errorf("cqrsync: MasterModel %q: FieldNames %s: %s: %s and %s keep their names", mm.CQRSID, col, name, RevisionField, UpdatedField))
		case name == "":
			errs = append(errs, fmt.Errorf("cqrsync: MasterModel %q: FieldNames %s: the wire name is empty", mm.CQRSID, col))
		case owner[name] != "":
			errs = append(errs, fmt.Errorf("cqrsync: MasterModel %q: FieldNames: %s and %s both become %q", mm.CQRSID, owner[name], col, name))
		}
		owner[name] = col
	}
	return errs
}

// Models returns the registered CQRS IDs, sorted.
func (m *Master[TTx]) Models() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return sortedKeys(m.models)
}

func (m *Master[TTx]) model(cqrsID string) (*MasterModel, error) {
	m.mu.RLock()
	mm, ok := m.models[cqrsID]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q: register it with Master.Register", ErrUnknownModel, cqrsID)
	}
	return mm, nil
}

// Create records the creation of the rows with the given primary keys,
// which the caller has just inserted in tx: it sets their cqrs_revision to 0
// and cqrs_updated to now, and adds one SAVE event per row to the outbox in
// the same transaction. See [Master] for when the events become visible.
func (m *Master[TTx]) Create(ctx context.Context, tx TTx, cqrsID string, pks ...any) (err error) {
	if m.cfg.Hooks != nil {
		var done func()
		ctx, done = m.observe(ctx, cqrsID, SignalSave, len(pks), &err)
		defer done()
	}
	return m.save(ctx, m.drv.UnwrapTx(tx), cqrsID, true, nil, pks)
}

// Insert writes a new row into the model's table and records its creation
// in the same transaction: it is INSERT followed by Create, with fewer
// round trips (one INSERT … RETURNING on SQLite, instead of an INSERT and a
// read back elsewhere; see below for PostgreSQL). values maps column names
// to values as the driver takes them; Insert sets cqrs_revision (0, or past
// the key's tombstone) and cqrs_updated itself, so values must not hold
// them. The primary key may be left out (or nil) where the database
// generates it and has RETURNING; the row is then touched once more, as
// Create does, to continue the revisions of a key deleted before. Like
// Create, the event becomes visible when tx commits, and never if it rolls
// back. A trigger AFTER INSERT that changes the row is not seen by
// RETURNING: capture such tables with INSERT and Create.
//
// On PostgreSQL the outbox row goes into the same statement: Insert builds
// the event from the row it expects (the given values, revision 0,
// cqrs_updated now) and checks it against the row the database returns;
// when they differ (a column default or a trigger, the revision after a
// tombstone, the database's own normalisation of a value), the event is
// replaced by one built from the stored row, so the model's meta and
// correlation-id functions may then be called twice.
func (m *Master[TTx]) Insert(ctx context.Context, tx TTx, cqrsID string, values map[string]any) (err error) {
	if m.cfg.Hooks != nil {
		var done func()
		ctx, done = m.observe(ctx, cqrsID, SignalSave, 1, &err)
		defer done()
	}
	ex := m.drv.UnwrapTx(tx)
	mm, ti, err := m.modelTable(ctx, ex, cqrsID)
	if err != nil {
		return err
	}
	defer func() { m.tables.evictStale(mm.CQRSID, ti, err) }()
	p := &sqldialect.InsertRowParams{CQRSID: mm.CQRSID, Table: mm.Table, PKColumn: mm.PK, Updated: m.now()}
	if p.Columns, p.Values, err = columnValues("Insert into", mm, ti, values); err != nil {
		return err
	}
	if pk, ok := values[mm.PK]; ok && pk != nil {
		wire, err := WireValue(ti.types[mm.PK], pk)
		if err != nil {
			return &ModelError{CQRSID: mm.CQRSID, PK: pk, Err: err}
		}
		p.Key = keyString(wire)
	}
	cols := make([]string, len(ti.columns))
	for i, c := range ti.columns {
		cols[i] = c.Name
	}
	// Build the event from the row as it will most likely be stored: the
	// given values, revision 0, cqrs_updated now. Where the database can,
	// it goes into the row's statement. The row read back decides: if it
	// differs (a default, a trigger, a tombstone's revision, the
	// database's normalisation), that event is replaced.
	predicted, canPredict := m.predictRow(mm, ti, values, p.Updated)
	var predictedEvent *sqldialect.OutboxRow
	if canPredict && !mm.NoProduce && mm.Serializer == nil {
		ev, ok, err := m.event(ctx, mm, SignalSave, predicted, m.instanceData(mm, predicted), previousData(mm, predicted, true, nil), p.Updated, "")
		if err != nil {
			return err
		}
		if ok {
			predictedEvent = &ev
			p.Outbox = predictedEvent
			// With OutboxWAL the event goes into the log in the same
			// statement; a wrong prediction is then retracted (the log
			// cannot be rewritten) and the right event written after it.
			p.OutboxWAL = m.cfg.Outbox == OutboxWAL
		}
	}
	rows, withOutbox, err := m.dialect.InsertRow(ctx, ex, p, cols)
	if err != nil {
		return err
	}
	extra := 0
	if withOutbox {
		extra = 1 // the outbox row's id
	}
	var row []masterRow
	var outboxID int64
	pkIndex := ti.byName[mm.PK]
	idOK := !withOutbox
	err = scanRawObjectsExtra(rows, cols, extra, ti, func(raw []any, o Object) {
		if withOutbox {
			outboxID, idOK = raw[len(cols)].(int64)
		}
		row = append(row, masterRow{pk: o[pkIndex].Value, all: o})
	})
	if err != nil {
		return errtext.Errorf("cqrsync: read %s: %w", mm.Table, err)
	}
	if len(row) != 1 {
		return fmt.Errorf("cqrsync: Insert into %s: read back %d rows, want 1", mm.Table, len(row))
	}
	if !idOK {
		// Without the id, a wrong predicted event could not be replaced.
		return fmt.Errorf("cqrsync: Insert into %s: the outbox row's id did not come back as an integer", mm.Table)
	}
	if p.Key == "" {
		// The database chose the key, so the INSERT could not look up the
		// key's tombstone (SQLite reuses the highest rowid once it is
		// deleted; a sequence may reach a key once inserted by hand): touch
		// the row as Create does, which continues a deleted key's
		// revisions, and capture that.
		if withOutbox {
			if err := m.dropPredicted(ctx, ex, outboxID); err != nil {
				return err
			}
		}
		return m.save(ctx, ex, cqrsID, true, nil, []any{row[0].pk})
	}
	if canPredict && jsonEqual(predicted.all, row[0].all) {
		switch {
		case withOutbox:
			m.cfg.Notify()
			collectTokens(ctx, mm, row)
			return nil
		case predictedEvent != nil:
			// The event is right: insert it as built, not a second time.
			if err := m.enqueue(ctx, ex, []sqldialect.OutboxRow{*predictedEvent}); err != nil {
				return err
			}
			collectTokens(ctx, mm, row)
			return nil
		case mm.Serializer == nil:
			return nil // no event: produce off, or the model refused the row
		}
	} else if withOutbox {
		// The stored row is not the predicted one: replace its event.
		if err := m.dropPredicted(ctx, ex, outboxID); err != nil {
			return err
		}
	}
	return m.publishRows(ctx, ex, mm, SignalSave, row, "", func(r masterRow) Object {
		return previousData(mm, r, true, nil)
	})
}

// dropPredicted takes back the event Insert wrote with the row: the
// outbox row with that id, or, with OutboxWAL, the log message at that
// position (by a retraction the relay applies).
func (m *Master[TTx]) dropPredicted(ctx context.Context, ex sqldialect.Executor, id int64) error {
	if m.cfg.Outbox == OutboxWAL {
		return m.dialect.RetractWALMessage(ctx, ex, id)
	}
	return m.dialect.DeleteOutbox(ctx, ex, []int64{id})
}

// columnValues orders the values of Insert or UpdateRow by column name (one
// statement text per column set) and checks them against the table: every
// column must exist, and cqrs_revision and cqrs_updated are cqrsync's.
func columnValues(op string, mm *MasterModel, ti *tableInfo, values map[string]any) ([]string, []any, error) {
	cols := make([]string, 0, len(values))
	for c := range values {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	vals := make([]any, 0, len(cols))
	var unknown []string
	for _, c := range cols {
		switch {
		case c == RevisionField || c == UpdatedField:
			return nil, nil, fmt.Errorf("cqrsync: %s %s: do not pass %s: cqrsync sets it", op, mm.Table, c)
		case !ti.has(c):
			unknown = append(unknown, c)
		}
		vals = append(vals, values[c])
	}
	if len(unknown) > 0 {
		return nil, nil, fmt.Errorf("cqrsync: %s %s: no column %s", op, mm.Table, strings.Join(unknown, ", "))
	}
	return cols, vals, nil
}

// UpdateRow sets the given columns of the row with primary key pk and
// captures the update, as Update would after the caller's own UPDATE: it
// raises cqrs_revision by one, sets cqrs_updated to now and adds a SAVE
// event to the outbox in tx. The values and the capture go in one
// UPDATE … RETURNING on PostgreSQL and SQLite (an UPDATE and a SELECT on
// MySQL), then the outbox insert: one statement fewer than UPDATE +
// Update. A missing row is an error wrapping ErrRowNotFound, and nothing
// is changed. values may not hold the primary key, cqrs_revision or
// cqrs_updated. For a model with tracked fields previous_data is null, as
// with Update without a snapshot: use UpdateWith to fill it.
func (m *Master[TTx]) UpdateRow(ctx context.Context, tx TTx, cqrsID string, pk any, values map[string]any) (err error) {
	if m.cfg.Hooks != nil {
		var done func()
		ctx, done = m.observe(ctx, cqrsID, SignalSave, 1, &err)
		defer done()
	}
	ex := m.drv.UnwrapTx(tx)
	mm, ti, err := m.modelTable(ctx, ex, cqrsID)
	if err != nil {
		return err
	}
	defer func() { m.tables.evictStale(mm.CQRSID, ti, err) }()
	if _, ok := values[mm.PK]; ok {
		return fmt.Errorf("cqrsync: UpdateRow of %s: values hold the primary key %s: a row keeps its key (delete it and insert another)", mm.Table, mm.PK)
	}
	touch := &sqldialect.TouchRowsParams{CQRSID: mm.CQRSID, Table: mm.Table, PKColumn: mm.PK, PKs: []any{pk}, Updated: m.now()}
	if touch.Columns, touch.Values, err = columnValues("UpdateRow of", mm, ti, values); err != nil {
		return err
	}
	if mm.NoProduce {
		n, err := m.dialect.TouchRows(ctx, ex, touch)
		if err == nil && n == 0 {
			err = fmt.Errorf("%w: %s has no row with %s %v inside this transaction", ErrRowNotFound, mm.Table, mm.PK, pk)
		}
		return err
	}
	rows, err := m.collectRows(mm, ti, touch.PKs, func(_ []any, cols []string) (sqldialect.Rows, error) {
		return m.dialect.TouchSelectRows(ctx, ex, touch, cols)
	})
	if err != nil {
		return err
	}
	return m.publishRows(ctx, ex, mm, SignalSave, rows, "", func(r masterRow) Object {
		return previousData(mm, r, false, nil)
	})
}

// predictRow builds the row Insert will most likely store: values, a new
// row's revision and cqrs_updated, as wire values in table order. ok is
// false when a column has no value to predict from (its default).
func (m *Master[TTx]) predictRow(mm *MasterModel, ti *tableInfo, values map[string]any, updated time.Time) (masterRow, bool) {
	all := make(Object, len(ti.columns))
	for i, c := range ti.columns {
		var v any
		switch c.Name {
		case RevisionField:
			v = int64(0)
		case UpdatedField:
			v = updated
		default:
			given, ok := values[c.Name]
			if !ok {
				return masterRow{}, false
			}
			v = given
		}
		wire, err := WireValue(ti.types[c.Name], v)
		if err != nil {
			return masterRow{}, false
		}
		all[i] = Member{Key: c.Name, Value: wire}
	}
	return masterRow{pk: all[ti.byName[mm.PK]].Value, all: all}, true
}

// Update records an update of the rows with the given primary keys, which
// the caller has just changed in tx: it raises their cqrs_revision by one,
// sets cqrs_updated to now, and adds one SAVE event per row to the outbox in
// the same transaction.
func (m *Master[TTx]) Update(ctx context.Context, tx TTx, cqrsID string, pks ...any) (err error) {
	if m.cfg.Hooks != nil {
		var done func()
		ctx, done = m.observe(ctx, cqrsID, SignalSave, len(pks), &err)
		defer done()
	}
	return m.save(ctx, m.drv.UnwrapTx(tx), cqrsID, false, nil, pks)
}

// UpdateOpts refines an update capture. The zero value is a plain Update.
type UpdateOpts struct {
	// Previous holds the rows' values from before the change, taken with
	// Master.Snapshot; it fills previous_data for models with TrackedFields.
	Previous *Snapshot
	// Fields, when not nil, declares a partial update of these columns only
	// (django-cqrs's save(update_fields=...)): it is not a synced change —
	// no event, no new revision — unless UpdateCQRSFields is set or
	// MasterConfig.AutoUpdateFields is on.
	Fields []string
	// UpdateCQRSFields makes a partial update a synced change
	// (django-cqrs's update_cqrs_fields=True).
	UpdateCQRSFields bool
}

// UpdateWith is Update with options: previous values of tracked fields,
// and partial updates.
func (m *Master[TTx]) UpdateWith(ctx context.Context, tx TTx, cqrsID string, opts *UpdateOpts, pks ...any) (err error) {
	if m.cfg.Hooks != nil {
		var done func()
		ctx, done = m.observe(ctx, cqrsID, SignalSave, len(pks), &err)
		defer done()
	}
	return m.save(ctx, m.drv.UnwrapTx(tx), cqrsID, false, opts, pks)
}

// Snapshot is rows' state before a change, for previous_data.
type Snapshot struct {
	cqrsID string
	rows   map[string]Object // by key, every column as a wire value
}

// Snapshot reads the rows with the given keys as they stand in tx, before
// the caller changes them; pass it as UpdateOpts.Previous.
func (m *Master[TTx]) Snapshot(ctx context.Context, tx TTx, cqrsID string, pks ...any) (*Snapshot, error) {
	ex := m.drv.UnwrapTx(tx)
	mm, ti, err := m.modelTable(ctx, ex, cqrsID)
	if err != nil {
		return nil, err
	}
	rows, err := m.readRows(ctx, ex, mm, ti, uniqueKeys(pks))
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{cqrsID: cqrsID, rows: make(map[string]Object, len(rows))}
	for _, r := range rows {
		snap.rows[keyString(r.pk)] = r.all
	}
	return snap, nil
}

// Delete deletes the rows with the given primary keys in tx and adds one
// DELETE event per row to the outbox in the same transaction. The event
// carries the row's revision plus one, as django-cqrs does. Keys with no row
// are an error wrapping ErrRowNotFound, and nothing is deleted. After any
// other error (a row whose values cannot be read, the database failing)
// part of the change may be made in tx: roll it back.
func (m *Master[TTx]) Delete(ctx context.Context, tx TTx, cqrsID string, pks ...any) (err error) {
	if m.cfg.Hooks != nil {
		var done func()
		ctx, done = m.observe(ctx, cqrsID, SignalDelete, len(pks), &err)
		defer done()
	}
	ex := m.drv.UnwrapTx(tx)
	pks = uniqueKeys(pks)
	mm, ti, err := m.modelTable(ctx, ex, cqrsID)
	if err != nil {
		return err
	}
	defer func() { m.tables.evictStale(mm.CQRSID, ti, err) }()
	rows, err := m.deleteRows(ctx, ex, mm, ti, pks)
	if err != nil {
		return err
	}
	now := m.now()
	// Remember the deleted keys, so that a re-created key continues its
	// revisions: replicas then order every event of a key by revision alone.
	tombs := make([]sqldialect.Tombstone, len(rows))
	events := make([]sqldialect.OutboxRow, 0, len(rows))
	published := make([]masterRow, 0, len(rows))
	for i, row := range rows {
		rev, err := revisionOf(row)
		if err != nil {
			return &ModelError{CQRSID: cqrsID, PK: row.pk, Err: err}
		}
		tombs[i] = sqldialect.Tombstone{CQRSID: cqrsID, Key: keyString(row.pk), Revision: rev + 1, Updated: now, At: now}
		data := Object{{Key: "id", Value: row.pk}, {Key: RevisionField, Value: rev + 1}, {Key: UpdatedField, Value: FormatDateTime(now)}}
		// The filter and meta function see the row as deleted: with the
		// DELETE's revision and time, as django-cqrs's instance has them.
		row.all = row.all.Clone()
		row.all.Set(RevisionField, rev+1)
		row.all.Set(UpdatedField, FormatDateTime(now))
		if mm.CustomDeleteData != nil {
			custom, err := mm.CustomDeleteData(ctx, row.all)
			if err != nil {
				return &ModelError{CQRSID: cqrsID, PK: row.pk, Err: fmt.Errorf("custom delete data: %w", err)}
			}
			if custom != nil {
				data = append(data, Member{Key: "custom", Value: custom})
			}
		}
		ev, ok, err := m.event(ctx, mm, SignalDelete, row, data, nil, now, "")
		if err != nil {
			return err
		}
		if ok {
			events = append(events, ev)
			published = append(published, row)
		}
	}
	if err := m.dialect.RecordTombstones(ctx, ex, tombs); err != nil {
		return err
	}
	if err := m.enqueue(ctx, ex, events); err != nil {
		return err
	}
	collectTokens(ctx, mm, published)
	return nil
}

// deleteRows deletes the rows with the keys pks and returns them as they
// were; if one is missing it deletes nothing. One key, the usual case, is
// deleted and read in one statement where the database has DELETE …
// RETURNING (a missing row is then simply not deleted); several keys are
// read first, so that none is deleted unless all are there.
func (m *Master[TTx]) deleteRows(ctx context.Context, ex sqldialect.Executor, mm *MasterModel, ti *tableInfo, pks []any) ([]masterRow, error) {
	if len(pks) == 1 && m.dialect.Returning() {
		// A key that cannot be read back fails before anything is deleted.
		if _, err := WireValue(ti.types[mm.PK], pks[0]); err != nil {
			return nil, &ModelError{CQRSID: mm.CQRSID, PK: pks[0], Err: err}
		}
		return m.collectRows(mm, ti, pks, func(chunk []any, cols []string) (sqldialect.Rows, error) {
			return m.dialect.DeleteSelectRows(ctx, ex, mm.Table, mm.PK, chunk, cols)
		})
	}
	rows, err := m.readRows(ctx, ex, mm, ti, pks)
	if err != nil {
		return nil, err
	}
	if _, err := m.dialect.DeleteRows(ctx, ex, mm.Table, mm.PK, pks); err != nil {
		return nil, err
	}
	return rows, nil
}

// Sync adds a SYNC event with the current state of each row to the outbox,
// without changing its revision: to every replica queue when queue is "",
// else to that queue only (django-cqrs's cqrs_sync). tx may be any
// transaction; the events become visible when it commits.
func (m *Master[TTx]) Sync(ctx context.Context, tx TTx, cqrsID, queue string, pks ...any) (err error) {
	if m.cfg.Hooks != nil {
		var done func()
		ctx, done = m.observe(ctx, cqrsID, SignalSync, len(pks), &err)
		defer done()
	}
	ex := m.drv.UnwrapTx(tx)
	mm, err := m.model(cqrsID)
	if err != nil {
		return err
	}
	if queue != "" && !validName(queue) {
		return fmt.Errorf("cqrsync: sync %s: queue name %q has '.', '*', '#' or spaces", cqrsID, queue)
	}
	ti, err := m.table(ctx, ex, mm)
	if err != nil {
		return err
	}
	defer func() { m.tables.evictStale(mm.CQRSID, ti, err) }()
	rows, err := m.readRows(ctx, ex, mm, ti, pks)
	if err != nil {
		return err
	}
	return m.publishRows(ctx, ex, mm, SignalSync, rows, queue, nil)
}

func (m *Master[TTx]) save(ctx context.Context, ex sqldialect.Executor, cqrsID string, create bool, opts *UpdateOpts, pks []any) (err error) {
	pks = uniqueKeys(pks)
	mm, err := m.model(cqrsID)
	if err != nil {
		return err
	}
	if opts == nil {
		opts = &UpdateOpts{}
	}
	if opts.Previous != nil && opts.Previous.cqrsID != cqrsID {
		return fmt.Errorf("cqrsync: UpdateOpts.Previous is a snapshot of %q, not %q", opts.Previous.cqrsID, cqrsID)
	}
	if len(pks) == 0 || (opts.Fields != nil && !opts.UpdateCQRSFields && !m.cfg.AutoUpdateFields) {
		return nil // a partial update is not a synced change
	}
	ti, err := m.table(ctx, ex, mm)
	if err != nil {
		return err
	}
	defer func() { m.tables.evictStale(mm.CQRSID, ti, err) }()
	touch := &sqldialect.TouchRowsParams{
		CQRSID: mm.CQRSID, Table: mm.Table, PKColumn: mm.PK, PKs: pks, Updated: m.now(), Reset: create,
	}
	if mm.NoProduce {
		n, err := m.dialect.TouchRows(ctx, ex, touch)
		if err != nil {
			return err
		}
		if n >= 0 && n != int64(len(pks)) {
			// Find which keys are missing, for the error.
			if _, err := m.readRows(ctx, ex, mm, ti, pks); err != nil {
				return err
			}
			return fmt.Errorf("cqrsync: %s: %d of %d keys updated", cqrsID, n, len(pks))
		}
		return nil
	}
	// Touch and read back in one statement where the database can.
	rows, err := m.collectRows(mm, ti, pks, func(chunk []any, cols []string) (sqldialect.Rows, error) {
		part := *touch
		part.PKs = chunk
		return m.dialect.TouchSelectRows(ctx, ex, &part, cols)
	})
	if err != nil {
		return err
	}
	return m.publishRows(ctx, ex, mm, SignalSave, rows, "", func(r masterRow) Object {
		return previousData(mm, r, create, opts.Previous)
	})
}

// previousData is django-cqrs's previous_data for a SAVE: null without
// tracked fields; on create, the tracked fields that are not null, as null;
// on update, the tracked fields that changed, with their old values (null
// when the caller gave no snapshot to compare with).
func previousData(mm *MasterModel, r masterRow, create bool, before *Snapshot) Object {
	if len(mm.TrackedFields) == 0 {
		return nil
	}
	prev := Object{}
	if create {
		for _, f := range mm.TrackedFields {
			if v, _ := r.all.Get(f); v != nil {
				prev = append(prev, Member{Key: mm.wireName(f), Value: nil})
			}
		}
		return prev
	}
	if before == nil {
		return nil
	}
	old, ok := before.rows[keyString(r.pk)]
	if !ok {
		return nil
	}
	for _, f := range mm.TrackedFields {
		was, _ := old.Get(f)
		now, _ := r.all.Get(f)
		if !jsonEqual(was, now) {
			prev = append(prev, Member{Key: mm.wireName(f), Value: was})
		}
	}
	return prev
}

// jsonEqual compares two wire values by their JSON text.
func jsonEqual(a, b any) bool {
	ja, errA := AppendJSON(nil, a)
	jb, errB := AppendJSON(nil, b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// modelTable looks up a registered model and its table's description.
func (m *Master[TTx]) modelTable(ctx context.Context, ex sqldialect.Executor, cqrsID string) (*MasterModel, *tableInfo, error) {
	mm, err := m.model(cqrsID)
	if err != nil {
		return nil, nil, err
	}
	ti, err := m.table(ctx, ex, mm)
	if err != nil {
		return nil, nil, err
	}
	return mm, ti, nil
}

// table returns the model's table, checking that the columns the model
// names exist.
func (m *Master[TTx]) table(ctx context.Context, ex sqldialect.Executor, mm *MasterModel) (*tableInfo, error) {
	ti, err := m.tables.get(ctx, ex, mm.CQRSID, mm.Table, mm.Types)
	if err != nil {
		return nil, err
	}
	if problems := masterProblems(mm, ti); len(problems) > 0 {
		m.tables.evict(mm.CQRSID, ti) // the next use re-reads the table, fixed or not
		return nil, errSchema(nil, "cqrsync: MasterModel %q: %s", mm.CQRSID, strings.Join(problems, "; "))
	}
	return ti, nil
}

// masterProblems lists what the model's table lacks for the columns the
// model names (beyond those tableCache.read checks), each with what to do.
func masterProblems(mm *MasterModel, ti *tableInfo) []string {
	var problems, missing []string
	for _, f := range slices.Concat([]string{mm.PK}, mm.Fields, mm.TrackedFields, slices.Sorted(maps.Keys(mm.FieldNames))) {
		if !ti.has(f) && !slices.Contains(missing, f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("table %s has no column %v (check PK, Fields, TrackedFields and FieldNames)", mm.Table, missing))
	}
	for _, col := range slices.Sorted(maps.Keys(mm.FieldNames)) {
		name := mm.FieldNames[col]
		_, renamed := mm.FieldNames[name]
		if ti.has(name) && !renamed && (mm.Fields == nil || slices.Contains(mm.Fields, name)) {
			problems = append(problems, fmt.Sprintf("FieldNames renames %s to %q, and table %s sends its own column %s too: rename that one as well, or leave it out of Fields",
				col, name, mm.Table, name))
		}
	}
	return problems
}

// uniqueKeys drops repeated keys, keeping the first of each: a key listed
// twice is one row and one event.
func uniqueKeys(pks []any) []any {
	if len(pks) < 2 {
		return pks
	}
	seen := make(map[string]bool, len(pks))
	out := pks[:0:0]
	for _, pk := range pks {
		k := fmt.Sprintf("%T:%v", pk, pk)
		if !seen[k] {
			seen[k] = true
			out = append(out, pk)
		}
	}
	return out
}

// publishRows builds and enqueues one event per row; prev, when set, gives
// each row's previous_data.
func (m *Master[TTx]) publishRows(ctx context.Context, ex sqldialect.Executor, mm *MasterModel, signal SignalType, rows []masterRow, queue string, prev func(masterRow) Object) error {
	if mm.NoProduce || len(rows) == 0 {
		return nil
	}
	datas, err := m.instanceDatas(ctx, ex, mm, rows)
	if err != nil {
		return err
	}
	now := m.now()
	events := make([]sqldialect.OutboxRow, 0, len(rows))
	published := make([]masterRow, 0, len(rows))
	for i, row := range rows {
		var p Object
		if prev != nil {
			p = prev(row)
		}
		ev, ok, err := m.event(ctx, mm, signal, row, datas[i], p, now, queue)
		if err != nil {
			return err
		}
		if ok {
			events = append(events, ev)
			published = append(published, row)
		}
	}
	if err := m.enqueue(ctx, ex, events); err != nil {
		return err
	}
	collectTokens(ctx, mm, published)
	return nil
}

// collectTokens appends the tokens of the events captured for rows to the
// context's collector (see CollectTokens), if it has one.
func collectTokens(ctx context.Context, mm *MasterModel, rows []masterRow) {
	toks := collector(ctx)
	if toks == nil || len(rows) == 0 {
		return
	}
	list := make([]Token, len(rows))
	for i, r := range rows {
		rev, _ := revisionOf(r) // the event was built from it: it is an integer
		list[i] = Token{CQRSID: mm.CQRSID, PK: r.pk, Revision: rev}
	}
	toks.add(list)
}

// instanceDatas builds instance_data for rows: through the model's
// serializer, in one call, or by projecting each row on the model's fields.
func (m *Master[TTx]) instanceDatas(ctx context.Context, ex sqldialect.Executor, mm *MasterModel, rows []masterRow) ([]Object, error) {
	out := make([]Object, len(rows))
	if mm.Serializer == nil {
		for i, r := range rows {
			out[i] = m.instanceData(mm, r)
		}
		return out, nil
	}
	alls := make([]Object, len(rows))
	for i, r := range rows {
		alls[i] = r.all.Clone()
	}
	datas, err := mm.Serializer(ctx, ex, alls)
	if err != nil {
		return nil, &ModelError{CQRSID: mm.CQRSID, Err: fmt.Errorf("serializer: %w", err)}
	}
	if len(datas) != len(rows) {
		return nil, &ModelError{CQRSID: mm.CQRSID, Err: fmt.Errorf("serializer returned %d objects for %d rows", len(datas), len(rows))}
	}
	for i, d := range datas {
		d = d.Clone()
		d.Delete(RevisionField)
		d.Delete(UpdatedField)
		rev, _ := rows[i].all.Get(RevisionField)
		upd, _ := rows[i].all.Get(UpdatedField)
		out[i] = append(d, Member{Key: RevisionField, Value: rev}, Member{Key: UpdatedField, Value: upd})
	}
	return out, nil
}

func (m *Master[TTx]) enqueue(ctx context.Context, ex sqldialect.Executor, events []sqldialect.OutboxRow) error {
	if len(events) == 0 {
		return nil
	}
	write := m.dialect.InsertOutbox
	if m.cfg.Outbox == OutboxWAL {
		write = m.dialect.EmitOutbox
	}
	if err := write(ctx, ex, events); err != nil {
		return err
	}
	m.cfg.Notify()
	return nil
}

// masterRow is one row read inside the capture's transaction.
type masterRow struct {
	pk  any    // the primary key as a wire value
	all Object // every column as a wire value, in table order
}

func revisionOf(r masterRow) (int64, error) {
	v, _ := r.all.Get(RevisionField)
	switch x := v.(type) {
	case int64:
		return x, nil
	case nil:
		return 0, nil
	}
	return 0, fmt.Errorf("cqrs_revision is %T %v, want an integer", v, v)
}

// readRows reads the rows by key, in the order of pks, and fails if one is
// missing.
func (m *Master[TTx]) readRows(ctx context.Context, ex sqldialect.Executor, mm *MasterModel, ti *tableInfo, pks []any) ([]masterRow, error) {
	return m.collectRows(mm, ti, pks, func(chunk []any, cols []string) (sqldialect.Rows, error) {
		return m.dialect.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{
			Table: mm.Table, PKColumn: mm.PK, Columns: cols, PKs: chunk,
		})
	})
}

// collectRows reads every column of the rows with the keys pks through
// query, called with chunks of keys, and returns them in the order of pks;
// it fails if one is missing.
func (m *Master[TTx]) collectRows(mm *MasterModel, ti *tableInfo, pks []any, query func(chunk []any, cols []string) (sqldialect.Rows, error)) ([]masterRow, error) {
	cols := make([]string, len(ti.columns))
	for i, c := range ti.columns {
		cols[i] = c.Name
	}
	pkIndex := ti.byName[mm.PK]
	byKey := make(map[string]masterRow, len(pks))
	for chunk := range slices.Chunk(pks, 500) {
		rows, err := query(chunk, cols)
		if err != nil {
			return nil, err
		}
		err = scanObjects(rows, cols, ti, func(o Object) error {
			byKey[keyString(o[pkIndex].Value)] = masterRow{pk: o[pkIndex].Value, all: o}
			return nil
		})
		if err != nil {
			return nil, errtext.Errorf("cqrsync: read %s: %w", mm.Table, err)
		}
	}
	out := make([]masterRow, 0, len(pks))
	var missing []any
	for _, pk := range pks {
		wire, err := WireValue(ti.types[mm.PK], pk)
		if err != nil {
			return nil, &ModelError{CQRSID: mm.CQRSID, PK: pk, Err: err}
		}
		row, ok := byKey[keyString(wire)]
		if !ok {
			missing = append(missing, pk)
			continue
		}
		out = append(out, row)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s has no row with %s in %v inside this transaction: capture after writing the row, in the same transaction", ErrRowNotFound, mm.Table, mm.PK, missing)
	}
	return out, nil
}

// scanObjects scans every row into an Object of wire values and closes rows.
func scanObjects(rows sqldialect.Rows, cols []string, ti *tableInfo, fn func(Object) error) error {
	var ferr error
	err := scanRawObjects(rows, cols, ti, func(_ []any, o Object) {
		if ferr == nil {
			ferr = fn(o)
		}
	})
	return cmp.Or(err, ferr)
}

// scanRawObjects scans every row, handing fn both the driver's values and
// the wire values, and closes rows.
func scanRawObjects(rows sqldialect.Rows, cols []string, ti *tableInfo, fn func(raw []any, o Object)) error {
	return scanRawObjectsExtra(rows, cols, 0, ti, fn)
}

// scanRawObjectsExtra is scanRawObjects for rows that carry extra columns
// after cols: fn gets them in raw only.
func scanRawObjectsExtra(rows sqldialect.Rows, cols []string, extra int, ti *tableInfo, fn func(raw []any, o Object)) error {
	defer rows.Close()
	raw := make([]any, len(cols)+extra)
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		o := make(Object, len(cols))
		for i, c := range cols {
			v, err := WireValue(ti.types[c], raw[i])
			if err != nil {
				return fmt.Errorf("column %s: %w", c, err)
			}
			o[i] = Member{Key: c, Value: v}
		}
		fn(slices.Clone(raw), o)
	}
	return rows.Err()
}

// instanceData projects a row onto the model's fields, django-cqrs's way:
// every column in table order, or the listed fields followed by
// cqrs_revision and cqrs_updated.
func (m *Master[TTx]) instanceData(mm *MasterModel, row masterRow) Object {
	if mm.Fields == nil {
		data := row.all.Clone()
		for i := range data {
			data[i].Key = mm.wireName(data[i].Key)
		}
		return data
	}
	data := make(Object, 0, len(mm.Fields)+2)
	for _, f := range append(slices.Clone(mm.Fields), RevisionField, UpdatedField) {
		v, _ := row.all.Get(f)
		data = append(data, Member{Key: mm.wireName(f), Value: v})
	}
	return data
}

// wireName is a column's key on the wire (FieldNames).
func (mm *MasterModel) wireName(col string) string {
	if name, ok := mm.FieldNames[col]; ok {
		return name
	}
	return col
}

// event builds one outbox row; ok is false when the model refuses the row.
func (m *Master[TTx]) event(ctx context.Context, mm *MasterModel, signal SignalType, row masterRow, data, prev Object, now time.Time, queue string) (sqldialect.OutboxRow, bool, error) {
	if mm.IsSyncInstance != nil && !mm.IsSyncInstance(row.all) {
		return sqldialect.OutboxRow{}, false, nil
	}
	p := Payload{
		SignalType:   signal,
		CQRSID:       mm.CQRSID,
		InstanceData: data,
		PreviousData: prev,
		InstancePK:   row.pk,
		Meta:         Object{},
	}
	metaFn := mm.Meta
	if metaFn == nil {
		metaFn = m.cfg.Meta
	}
	if metaFn != nil {
		meta, err := metaFn(ctx, signal, row.all)
		if err != nil {
			return sqldialect.OutboxRow{}, false, &ModelError{CQRSID: mm.CQRSID, PK: row.pk, Err: fmt.Errorf("meta function: %w", err)}
		}
		if meta != nil {
			p.Meta = meta
		}
	}
	if m.cfg.CorrelationID != nil {
		p.CorrelationID = m.cfg.CorrelationID(ctx, signal, mm.CQRSID, row.pk, queue)
	}
	if ttl := cmp.Or(mm.MessageTTL, m.cfg.MessageTTL); ttl > 0 {
		p.Expires = now.Add(ttl)
	}
	body, err := p.AppendJSON(nil)
	if err != nil {
		return sqldialect.OutboxRow{}, false, &ModelError{CQRSID: mm.CQRSID, PK: row.pk, Err: err}
	}
	m.cfg.Logger.DebugContext(ctx, "cqrsync: captured", slog.String("cqrs_id", mm.CQRSID), slog.Any("pk", row.pk),
		slog.String("signal", string(signal)), slog.String("correlation_id", p.CorrelationID))
	return sqldialect.OutboxRow{CQRSID: mm.CQRSID, Queue: queue, Body: body, CreatedAt: now, Headers: m.headers(ctx, p.CorrelationID)}, true, nil
}

// observe begins a capture call's observation: it returns the call's
// context (with its span, when the hooks trace) and done, which the call
// defers to report it to the hooks with the error *err holds by then.
func (m *Master[TTx]) observe(ctx context.Context, cqrsID string, signal SignalType, rows int, err *error) (context.Context, func()) {
	var end func(error)
	if t, ok := m.cfg.Hooks.(hook.Tracer); ok {
		ctx, end = t.TraceCapture(ctx, cqrsID, string(signal))
	}
	began := time.Now()
	return ctx, func() {
		m.cfg.Hooks.OnCapture(ctx, hook.Capture{CQRSID: cqrsID, Signal: string(signal), Rows: rows, Duration: time.Since(began), Err: *err})
		if end != nil {
			end(*err)
		}
	}
}

// headers returns the headers stored with an event: its correlation ID and
// what the Propagator injects from ctx; nil when there are none.
func (m *Master[TTx]) headers(ctx context.Context, correlationID string) map[string]string {
	resent, _ := ctx.Value(resentKey{}).(bool)
	if m.cfg.Propagator == nil && correlationID == "" && m.cfg.ResendQueue == "" {
		return nil
	}
	h := hook.MapCarrier{}
	if correlationID != "" {
		h[hook.HeaderCorrelationID] = correlationID
	}
	if m.cfg.ResendQueue != "" {
		h[HeaderResendQueue] = m.cfg.ResendQueue
		if resent {
			h[HeaderResent] = "1"
		}
	}
	if m.cfg.Propagator != nil {
		m.cfg.Propagator.Inject(ctx, h)
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

func (m *Master[TTx]) now() time.Time { return m.cfg.Now().UTC().Truncate(time.Microsecond) }

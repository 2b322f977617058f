package cqrsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// DefaultTombstoneRetention is how long a replica remembers deleted keys.
const DefaultTombstoneRetention = 7 * 24 * time.Hour

// ReplicaModel registers a replica table under a CQRS ID.
type ReplicaModel struct {
	// CQRSID is the model's name on the wire, as the master registered it.
	// Required.
	CQRSID string
	// Table is the replica table. Required. It must have the columns
	// cqrs_revision (integer) and cqrs_updated (timestamp).
	Table string
	// PK is the replica's primary key column. Default "id".
	PK string
	// Mapping renames master fields to replica columns (django-cqrs's
	// CQRS_MAPPING). When set, only the mapped fields are kept, plus
	// cqrs_revision and cqrs_updated. When nil, fields keep their names and
	// fields the table has no column for are ignored.
	Mapping map[string]string
	// Types declares the value type of columns whose SQL type does not say
	// it (see MasterModel.Types).
	Types map[string]ValueType

	// OnSave and OnDelete, when set, are custom handlers (django-cqrs's
	// CQRS_CUSTOM_SERIALIZATION with cqrs_create/cqrs_update/cqrs_delete):
	// they run in the apply transaction, after the guarded write of Table
	// and only when it applied the event, so they inherit the revision,
	// duplicate and tombstone rules. Table then needs only the key and the
	// revision columns; the handler writes the rest (nested data and related
	// tables) from ReplicaEvent.Data, the whole instance_data.
	OnSave   func(ctx context.Context, ex sqldialect.Executor, e *ReplicaEvent) error
	OnDelete func(ctx context.Context, ex sqldialect.Executor, e *ReplicaEvent) error
	// NoDBOperations skips the table altogether (django-cqrs's
	// CQRS_NO_DB_OPERATIONS): every event goes to OnSave/OnDelete, which
	// are then required, with no revision guard.
	NoDBOperations bool
	// Meta passes the event's meta to the handlers (django-cqrs's
	// CQRS_META); otherwise ReplicaEvent.Meta is nil.
	Meta bool
	// OnlyDirectSyncs ignores SYNCs broadcast to every queue and applies
	// only those aimed at this replica's queue (django-cqrs's
	// CQRS_ONLY_DIRECT_SYNCS, which in django-cqrs's RabbitMQ transport
	// ignores every SYNC; cqrsync reads the target from the routing key).
	// Those overwrite the row whatever its revision (see Replica).
	OnlyDirectSyncs bool
	// SelectForUpdate locks the row before applying (django-cqrs's
	// CQRS_SELECT_FOR_UPDATE), serialising handlers that read then write
	// across consumer processes. The guarded write needs no lock.
	SelectForUpdate bool
	// QueryTimeout bounds the database work of one event (its statements
	// and handlers); 0 means none, and a negative value is refused. An
	// event that outlasts it has failed, like one with bad data: the retry
	// policy retries it and then moves it to the dead letters, and the
	// events behind it go on.
	QueryTimeout time.Duration
	// Retry overrides the consumer's retry policy for this model.
	Retry *RetryPolicy
}

// ReplicaEvent is an event as a replica handler sees it.
type ReplicaEvent struct {
	Signal SignalType
	CQRSID string
	// PK is instance_pk as received (json.Number for a number).
	PK       any
	Revision int64
	Updated  time.Time
	// Data is the whole instance_data, unfiltered and unmapped.
	Data Object
	// Previous is previous_data (tracked fields) as django-cqrs's replica
	// hands it over: nil when absent or empty, and with the model's Mapping
	// applied (keys renamed, unmapped keys dropped) when it has one.
	Previous Object
	// Meta is the event's meta when the model sets Meta, else nil.
	Meta          Object
	CorrelationID string
}

// ReplicaConfig configures a [Replica].
type ReplicaConfig struct {
	// Logger receives the apply log: stale and duplicate events at debug,
	// revision gaps and downgrades by a SYNC sent to this replica's queue
	// alone at warn. Default slog.Default().
	Logger *slog.Logger
	// TombstoneRetention is how long deleted keys are remembered, so that a
	// late SAVE cannot bring them back. Default DefaultTombstoneRetention; a
	// negative value is refused.
	TombstoneRetention time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Propagator, when set, extracts the values a master's Propagator
	// injected into an event's headers (a trace context) into the context
	// the model's OnSave and OnDelete handlers receive. Those handlers can
	// read the headers themselves with hook.Headers.
	Propagator hook.Propagator
	// WaitPoll is how often Replica.WaitFor re-reads a key while no
	// Consumer of this Replica runs in the process (beside one, 10 ×
	// WaitPoll: the consumer's batches wake it). Default DefaultWaitPoll; a
	// negative value is refused.
	WaitPoll time.Duration
}

// Replica applies events to registered replica tables.
//
// # Apply rules
//
// Every event is applied by guarded SQL, never by reading and then writing,
// so concurrent workers and consumer processes cannot undo each other:
//
//   - SAVE creates a missing row. It updates an existing row only when its
//     cqrs_revision is higher than the stored one: an equal revision is a
//     duplicate and an older one is stale; both are dropped. A revision more
//     than one above the stored one is applied and logged as lost packages.
//   - A SYNC broadcast to every queue ([Payload.Queue] empty: `cqrsync
//     sync` without --queue, [Master.SyncQuery] without SyncOpts.Queue)
//     creates a missing row and writes an existing one when its revision
//     is not lower than the stored one: at the stored revision it
//     repairs content that drifted. An older one is stale and dropped, like
//     a SAVE: a broadcast sync never downgrades a replica. (django-cqrs
//     applies any SYNC; but `cqrsync sync` reads rows without locking them
//     while writers change them, so a SYNC read before a change can arrive
//     after the change's SAVE, and applying it would leave the row stale
//     until its next change.)
//   - A SYNC sent to this replica's queue alone ([Payload.Queue] set, routed
//     cqrs.<queue>.<cqrs_id>: `cqrsync diff-sync`, `sync --queue`) is an
//     operator's repair: it creates a missing row and overwrites an
//     existing one whatever the stored revision, as django-cqrs does for every SYNC, and a downgrade is
//     logged at warn. That is how a replica that drifted ahead of its
//     master, or missed the DELETE of a key a django-cqrs master re-created
//     at revision 0, is put back. Run such repairs on a quiet table, or diff
//     again afterwards: a change made after the sync read the row may be
//     undone by it. Only the first delivery repairs: a retry
//     (retries > 0) or a dead letter sent again ([HeaderReplayed]) of a
//     one-queue SYNC may come after newer changes and applies only if not
//     older, and a retried broadcast keeps its [HeaderBroadcast] mark.
//   - DELETE removes the row unless the stored row is newer than the delete
//     (its revision is not lower: a re-created key) or the key's tombstone
//     is as new as the delete (revision and cqrs_updated: the DELETE was
//     delivered again, and the row is a django-cqrs re-creation, see
//     below), and records a tombstone with the delete's revision and
//     cqrs_updated.
//   - A SAVE or SYNC (either kind) whose revision is not higher than the
//     key's tombstone and whose cqrs_updated is not later is dropped: a late
//     event cannot resurrect a deleted row.
//   - Re-created keys: a django-cqrs master restarts a re-created key at
//     cqrs_revision 0, so its SAVE is not newer than the tombstone; its
//     cqrs_updated, strictly later than the DELETE's (kept in the
//     tombstone), marks it as a re-creation, and it is applied. An event
//     from before the delete (an older cqrs_updated) stays dropped. A
//     cqrsync master instead continues a re-created key's revisions after
//     the delete's, so its events pass on their revision alone.
//   - Tombstones are purged after TombstoneRetention.
//
// Methods are safe for concurrent use.
type Replica struct {
	cfg     ReplicaConfig
	db      sqldialect.DB
	dialect applyStore
	tables  tableCache

	mu     sync.RWMutex
	models map[string]*ReplicaModel

	waiters waiters // the WaitFor calls, woken by consumers' batches
}

// NewReplica returns a Replica on the replica database db: a driver from
// package sqldialect/databasesql (a *sql.DB and its dialect) or
// sqldialect/pgxv5 (a *pgxpool.Pool). Its dialect renders every statement,
// and the Consumer and tools.Load run their transactions on it.
func NewReplica(db sqldialect.DB, cfg *ReplicaConfig) (*Replica, error) {
	if db == nil {
		return nil, errors.New("cqrsync: NewReplica: db is nil: pass the replica database's driver, e.g. databasesql.New(db, sqldialect.SQLite())")
	}
	if cfg == nil {
		cfg = &ReplicaConfig{}
	}
	c := *cfg
	if err := errors.Join(negativeDurations("ReplicaConfig", []namedDuration{
		{"TombstoneRetention", c.TombstoneRetention, "0 for the default 7 days"},
		{"WaitPoll", c.WaitPoll, "0 for the default 1s"},
	})...); err != nil {
		return nil, err
	}
	c.Logger = cmp.Or(c.Logger, slog.Default())
	c.TombstoneRetention = cmp.Or(c.TombstoneRetention, DefaultTombstoneRetention)
	c.WaitPoll = cmp.Or(c.WaitPoll, DefaultWaitPoll)
	if c.Now == nil {
		c.Now = time.Now
	}
	d := db.Dialect()
	return &Replica{cfg: c, db: db, dialect: d, tables: tableCache{dialect: d}, models: map[string]*ReplicaModel{}}, nil
}

// Dialect returns the replica database's dialect.
func (r *Replica) Dialect() sqldialect.Dialect { return r.db.Dialect() }

// DB returns the replica database's driver, as passed to NewReplica.
func (r *Replica) DB() sqldialect.DB { return r.db }

// Register adds a replica model, reporting every problem at once.
func (r *Replica) Register(model *ReplicaModel) error {
	rm := *model
	rm.PK = cmp.Or(rm.PK, "id")
	var errs []error
	if !validName(rm.CQRSID) {
		errs = append(errs, fmt.Errorf("cqrsync: ReplicaModel.CQRSID %q: set a name without '.', '*', '#' or spaces", rm.CQRSID))
	}
	switch {
	case rm.NoDBOperations && (rm.OnSave == nil || rm.OnDelete == nil):
		errs = append(errs, fmt.Errorf("cqrsync: ReplicaModel %q: NoDBOperations needs both OnSave and OnDelete", rm.CQRSID))
	case !rm.NoDBOperations && rm.Table == "":
		errs = append(errs, fmt.Errorf("cqrsync: ReplicaModel %q: Table is empty (or set NoDBOperations with handlers)", rm.CQRSID))
	}
	errs = append(errs, negativeDurations(fmt.Sprintf("ReplicaModel{CQRSID: %q}", rm.CQRSID), []namedDuration{
		{"QueryTimeout", rm.QueryTimeout, "0 for no timeout"},
	})...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.models[rm.CQRSID]; dup {
		errs = append(errs, fmt.Errorf("cqrsync: ReplicaModel %q is already registered", rm.CQRSID))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.models[rm.CQRSID] = &rm
	return nil
}

// Models returns the registered CQRS IDs, sorted.
func (r *Replica) Models() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.models)
}

// Model returns the registered model for cqrsID.
func (r *Replica) Model(cqrsID string) (*ReplicaModel, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.models[cqrsID]
	return m, ok
}

// Outcome says what applying an event did.
type Outcome int

// The outcomes of [Replica.Apply].
const (
	OutcomeCreated    Outcome = iota + 1 // a SAVE or SYNC created the row
	OutcomeUpdated                       // a newer SAVE updated the row
	OutcomeSynced                        // a SYNC wrote the row (see Replica for which revisions it may overwrite)
	OutcomeDuplicate                     // a SAVE with the stored revision: dropped
	OutcomeStale                         // a SAVE or SYNC older than the row: dropped
	OutcomeTombstoned                    // a SAVE or SYNC older than the key's delete: dropped
	OutcomeDeleted                       // a DELETE removed the row
	OutcomeNoop                          // a DELETE found no row, or a newer one
	OutcomeIgnored                       // a broadcast SYNC for an only-direct-syncs model
	OutcomeHandled                       // a no-DB-operations model's handler ran
)

var outcomeNames = [...]string{"", "created", "updated", "synced", "duplicate", "stale", "tombstoned", "deleted", "noop", "ignored", "handled"}

// String returns the outcome's name as logs show it ("created", "stale", ...).
func (o Outcome) String() string {
	if o > 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Applied reports whether the event changed the table.
func (o Outcome) Applied() bool {
	return o == OutcomeCreated || o == OutcomeUpdated || o == OutcomeSynced || o == OutcomeDeleted || o == OutcomeHandled
}

// Apply applies one event through ex, typically a transaction the caller
// commits. Errors wrap ErrUnknownModel, ErrUnknownSignal, ErrMissingFields
// or ErrMalformedPayload for problems with the event itself, and the
// database's error otherwise (see IsRetryable). An error after the model's
// QueryTimeout ran out, and a custom handler's error other than the
// database driver's, are the event's: IsRetryable reports false for them.
func (r *Replica) Apply(ctx context.Context, ex sqldialect.Executor, p *Payload) (Outcome, error) {
	rm, ok := r.Model(p.CQRSID)
	if !ok {
		return 0, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: fmt.Errorf("%w: this replica has not registered it", ErrUnknownModel)}
	}
	if !p.SignalType.Valid() {
		return 0, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: fmt.Errorf("%w %q", ErrUnknownSignal, p.SignalType)}
	}
	if p.SignalType == SignalSync && rm.OnlyDirectSyncs && p.Queue == "" {
		return OutcomeIgnored, nil
	}
	if rm.QueryTimeout > 0 {
		tctx, cancel := context.WithTimeout(ctx, rm.QueryTimeout)
		defer cancel()
		out, err := r.apply(tctx, ex, rm, p)
		if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
			// The event's own deadline, not the database's failure: the
			// retry policy and then the dead letters deal with it.
			var me *ModelError
			if errors.As(err, &me) {
				err = me.Err
			}
			return 0, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: eventError{
				fmt.Errorf("the model's QueryTimeout (%v) ran out; raise it if the work needs longer: %w", rm.QueryTimeout, err)}}
		}
		return out, err
	}
	return r.apply(ctx, ex, rm, p)
}

// apply is Apply within the model's QueryTimeout.
func (r *Replica) apply(ctx context.Context, ex sqldialect.Executor, rm *ReplicaModel, p *Payload) (Outcome, error) {
	if rm.NoDBOperations {
		return r.applyHandlers(ctx, ex, rm, p)
	}
	ti, err := r.tables.get(ctx, ex, rm.CQRSID, rm.Table, rm.Types)
	if err != nil {
		return 0, err
	}
	var out Outcome
	if p.SignalType == SignalDelete {
		out, err = r.applyDelete(ctx, ex, rm, ti, p)
	} else {
		out, err = r.applySave(ctx, ex, rm, ti, p)
	}
	if err != nil || !out.Applied() {
		r.tables.evictStale(rm.CQRSID, ti, err)
		return out, err
	}
	if _, err := r.callHandler(ctx, ex, rm, p); err != nil {
		return 0, err
	}
	return out, nil
}

// eventContext returns the context of p's handler: ctx with the headers p
// arrived with, and what the Propagator extracts from them.
func (r *Replica) eventContext(ctx context.Context, p *Payload) context.Context {
	if p.Headers == nil {
		return ctx
	}
	ctx = hook.WithHeaders(ctx, p.Headers)
	if r.cfg.Propagator != nil {
		ctx = r.cfg.Propagator.Extract(ctx, hook.MapCarrier(p.Headers))
	}
	return ctx
}

// applyHandlers hands an event of a no-DB-operations model to its handler.
func (r *Replica) applyHandlers(ctx context.Context, ex sqldialect.Executor, rm *ReplicaModel, p *Payload) (Outcome, error) {
	called, err := r.callHandler(ctx, ex, rm, p)
	if err != nil || !called {
		return 0, err
	}
	return OutcomeHandled, nil
}

// callHandler runs the model's handler for the event, if it has one.
func (r *Replica) callHandler(ctx context.Context, ex sqldialect.Executor, rm *ReplicaModel, p *Payload) (bool, error) {
	fn := rm.OnSave
	if p.SignalType == SignalDelete {
		fn = rm.OnDelete
	}
	if fn == nil {
		return false, nil
	}
	rev, updated, err := eventVersion(p)
	if err != nil {
		return false, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: err}
	}
	e := &ReplicaEvent{
		Signal: p.SignalType, CQRSID: p.CQRSID, PK: p.InstancePK, Revision: rev, Updated: updated,
		Data: p.InstanceData, Previous: mapPrevious(rm, p.PreviousData), CorrelationID: p.CorrelationID,
	}
	if rm.Meta {
		e.Meta = p.Meta
	}
	if err := fn(r.eventContext(ctx, p), ex, e); err != nil {
		err = fmt.Errorf("handler: %w", err)
		if !databaseFailure(err) {
			// The handler's own failure, whatever its words or type (a
			// deadline of its own, a web service down): the retry policy
			// and then the dead letters deal with it. Only the replica
			// database's typed errors pause the worker.
			err = eventError{err}
		}
		return false, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: err}
	}
	return true, nil
}

// mapPrevious returns previous_data as django-cqrs passes it to handlers:
// nil when empty, renamed through the model's Mapping when it has one.
func mapPrevious(rm *ReplicaModel, prev Object) Object {
	if len(prev) == 0 {
		return nil
	}
	if rm.Mapping == nil {
		return prev
	}
	out := make(Object, 0, len(prev))
	for _, m := range prev {
		if name, ok := rm.Mapping[m.Key]; ok {
			out = append(out, Member{Key: name, Value: m.Value})
		}
	}
	return out
}

// eventVersion reads the revision and cqrs_updated every event carries.
func eventVersion(p *Payload) (int64, time.Time, error) {
	if p.InstanceData == nil {
		return 0, time.Time{}, &PayloadError{Field: "instance_data", Reason: "is null"}
	}
	rev, err := p.Revision()
	if err != nil {
		return 0, time.Time{}, err
	}
	updated, err := p.Updated()
	if err != nil {
		return 0, time.Time{}, err
	}
	return rev, updated, nil
}

// saveRow is a SAVE or SYNC turned into a replica row.
type saveRow struct {
	cols    []string
	vals    []any
	pk      any
	rev     int64
	updated time.Time
}

// prepareSave maps an event's instance_data onto the replica table.
func prepareSave(rm *ReplicaModel, ti *tableInfo, p *Payload) (*saveRow, error) {
	fail := func(err error) (*saveRow, error) {
		return nil, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: err}
	}
	rev, updated, err := eventVersion(p)
	if err != nil {
		return fail(err)
	}
	row := &saveRow{cols: make([]string, 0, len(p.InstanceData)), vals: make([]any, 0, len(p.InstanceData)), rev: rev, updated: updated}
	for _, m := range p.InstanceData {
		col := m.Key
		if rm.Mapping != nil && col != RevisionField && col != UpdatedField {
			mapped, ok := rm.Mapping[col]
			if !ok {
				continue
			}
			col = mapped
		}
		if !ti.has(col) || slices.Contains(row.cols, col) {
			continue
		}
		v, err := ColumnValue(ti.types[col], m.Value)
		if err != nil {
			return fail(fmt.Errorf("field %q: %w", m.Key, err))
		}
		if col == rm.PK {
			row.pk = v
		}
		row.cols = append(row.cols, col)
		row.vals = append(row.vals, v)
	}
	var missing []string
	for _, c := range ti.columns {
		if !c.Nullable && !c.HasDefault && !slices.Contains(row.cols, c.Name) {
			missing = append(missing, c.Name)
		}
	}
	if row.pk == nil && !slices.Contains(missing, rm.PK) {
		missing = append(missing, rm.PK)
	}
	if len(missing) > 0 {
		return fail(fmt.Errorf("%w: table %s needs %v and the event does not carry them (check the model's Mapping)", ErrMissingFields, rm.Table, missing))
	}
	return row, nil
}

func (r *Replica) applySave(ctx context.Context, ex sqldialect.Executor, rm *ReplicaModel, ti *tableInfo, p *Payload) (Outcome, error) {
	row, err := prepareSave(rm, ti, p)
	if err != nil {
		return 0, err
	}
	cols, vals, pk, rev, updated := row.cols, row.vals, row.pk, row.rev, row.updated
	stored, exists, err := r.storedRevision(ctx, ex, rm, pk)
	if err != nil {
		return 0, err
	}
	guard := p.revisionGuard()
	n, err := r.dialect.Upsert(ctx, ex, &sqldialect.UpsertParams{
		Table: rm.Table, PKColumn: rm.PK, Columns: cols, Values: vals,
		Revision: rev, Guard: guard,
		CQRSID: p.CQRSID, Key: keyString(pk), Updated: updated,
		UniqueKeys: ti.uniqueKeys,
	})
	if err != nil {
		return 0, err
	}
	out := saveOutcome(guard, n > 0, exists, rev, stored)
	r.logOutcome(ctx, p, pk, rev, stored, out)
	return out, nil
}

// revisionGuard is the revision guard of a SAVE or SYNC (see Replica): a
// SAVE must be newer than the stored row; a SYNC broadcast to every queue
// must not be older; a SYNC sent to this replica's queue alone (an
// operator's repair) overwrites whatever the stored revision.
func (p *Payload) revisionGuard() sqldialect.Guard {
	switch {
	case p.SignalType != SignalSync:
		return sqldialect.GuardNewer
	case p.Queue == "" || p.Retries > 0 || p.Headers[HeaderReplayed] != "":
		// A broadcast, or a copy of a one-queue SYNC (a retry, a dead
		// letter sent again) that may come after newer changes.
		return sqldialect.GuardNotOlder
	default:
		return sqldialect.GuardAny
	}
}

// saveOutcome names what a guarded write of a SAVE (or a SYNC) did, from
// the guard it ran under, whether it wrote the row, whether a row was
// stored before and its revision: for logs and counters only, since the
// guards in SQL decide the write. A dropped event older than the stored row
// is stale; one at the stored revision a duplicate (a SYNC there is written
// unless a tombstone stops it); any other drop is the tombstone's.
func saveOutcome(guard sqldialect.Guard, written, existed bool, rev, stored int64) Outcome {
	switch {
	case !written && existed && rev < stored && guard != sqldialect.GuardAny:
		return OutcomeStale
	case !written && existed && rev == stored && guard == sqldialect.GuardNewer:
		return OutcomeDuplicate
	case !written:
		return OutcomeTombstoned
	case !existed:
		return OutcomeCreated
	case guard != sqldialect.GuardNewer:
		return OutcomeSynced
	default:
		return OutcomeUpdated
	}
}

// logOutcome logs what applying a SAVE or SYNC did: drops at debug, revision
// gaps and downgrades by a SYNC sent to this queue alone at warn.
func (r *Replica) logOutcome(ctx context.Context, p *Payload, pk any, rev, stored int64, out Outcome) {
	log := r.cfg.Logger
	attrs := func(extra ...slog.Attr) []slog.Attr {
		return append([]slog.Attr{slog.String("cqrs_id", p.CQRSID), slog.Any("pk", pk), slog.Int64("revision", rev),
			slog.String("correlation_id", p.CorrelationID)}, extra...)
	}
	switch out {
	case OutcomeTombstoned:
		log.LogAttrs(ctx, slog.LevelDebug, "cqrsync: event older than the key's delete, dropped", attrs()...)
	case OutcomeDuplicate:
		log.LogAttrs(ctx, slog.LevelDebug, "cqrsync: duplicate event, dropped", attrs()...)
	case OutcomeStale:
		log.LogAttrs(ctx, slog.LevelDebug, "cqrsync: wrong sync order: stale event dropped", attrs(slog.Int64("stored_revision", stored))...)
	case OutcomeSynced:
		if rev < stored {
			log.LogAttrs(ctx, slog.LevelWarn, "cqrsync: SYNC downgraded the row's revision", attrs(slog.Int64("stored_revision", stored), slog.String("queue", p.Queue))...)
		}
	case OutcomeUpdated:
		if lost := rev - stored - 1; lost > 0 {
			p.gap = p.SignalType == SignalSave
			log.LogAttrs(ctx, slog.LevelWarn, "cqrsync: lost packages: revision gap", attrs(slog.Int64("stored_revision", stored), slog.Int64("lost", lost))...)
		}
	case OutcomeCreated:
		// A key first seen past revision 0: its earlier events were lost
		// (or it was re-created after a delete this replica saw).
		p.gap = p.SignalType == SignalSave && rev > 0
	}
}

// storedRevision reads the row's revision, for classifying and logging the
// outcome only: the write itself is guarded in SQL.
func (r *Replica) storedRevision(ctx context.Context, ex sqldialect.Executor, rm *ReplicaModel, pk any) (int64, bool, error) {
	rows, err := r.dialect.SelectRows(ctx, ex, &sqldialect.SelectRowsParams{
		Table: rm.Table, PKColumn: rm.PK, Columns: []string{RevisionField}, PKs: []any{pk}, ForUpdate: rm.SelectForUpdate,
	})
	if err != nil {
		return 0, false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return 0, false, rows.Err()
	}
	var rev int64
	if err := rows.Scan(&rev); err != nil {
		return 0, false, err
	}
	return rev, true, rows.Close()
}

func (r *Replica) applyDelete(ctx context.Context, ex sqldialect.Executor, rm *ReplicaModel, ti *tableInfo, p *Payload) (Outcome, error) {
	pk, rev, updated, err := deleteVersion(rm, ti, p)
	if err != nil {
		return 0, err
	}
	if rm.SelectForUpdate {
		if _, _, err := r.storedRevision(ctx, ex, rm, pk); err != nil {
			return 0, err
		}
	}
	n, err := r.dialect.DeleteGuarded(ctx, ex, &sqldialect.DeleteGuardedParams{
		Table: rm.Table, PKColumn: rm.PK, PK: pk, Revision: rev,
		CQRSID: p.CQRSID, Key: keyString(pk), Updated: updated, Now: r.cfg.Now(),
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return OutcomeNoop, nil
	}
	return OutcomeDeleted, nil
}

// deleteVersion reads a DELETE's key, as the key column's type, its
// revision and cqrs_updated.
func deleteVersion(rm *ReplicaModel, ti *tableInfo, p *Payload) (pk any, rev int64, updated time.Time, err error) {
	fail := func(err error) (any, int64, time.Time, error) {
		return nil, 0, time.Time{}, &ModelError{CQRSID: p.CQRSID, PK: p.InstancePK, Err: err}
	}
	rev, updated, err = eventVersion(p)
	if err != nil {
		return fail(err)
	}
	// django-cqrs names the key "id" in a DELETE, whatever the column.
	raw, ok := p.InstanceData.Get("id")
	if !ok {
		raw = p.InstancePK
	}
	pk, err = ColumnValue(ti.types[rm.PK], raw)
	if err != nil || pk == nil {
		return fail(fmt.Errorf("%w: DELETE carries no usable primary key (instance_data.id = %v): %v", ErrMissingFields, raw, err))
	}
	return pk, rev, updated, nil
}

// PurgeTombstones forgets deleted keys older than the retention.
func (r *Replica) PurgeTombstones(ctx context.Context, ex sqldialect.Executor) (int64, error) {
	return r.dialect.PurgeTombstones(ctx, ex, r.cfg.Now().Add(-r.cfg.TombstoneRetention))
}

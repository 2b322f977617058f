package sqldialect

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Dialect is everything cqrsync asks of a SQL database: the outbox, the
// master's revision bookkeeping, keyset reads, the replica's guarded writes
// and tombstones, and table introspection.
//
// The methods take an [Executor], so they run on a pool or inside the
// caller's transaction alike. Every statement is parameterised; identifiers
// come from registered models and are quoted with QuoteIdent.
//
// API is not stable. DO NOT IMPLEMENT outside this module: use [SQLite] (and
// the other constructors in this package). New methods are added as cqrsync
// grows.
type Dialect interface {
	// Name is the dialect's short name: "sqlite", "postgres" or "mysql".
	Name() string
	// QuoteIdent quotes a table or column name.
	QuoteIdent(name string) string
	// Placeholder returns the n-th (1-based) bind parameter marker.
	Placeholder(n int) string
	// Returning declares that the database has UPDATE and DELETE …
	// RETURNING (PostgreSQL, SQLite): TouchSelectRows and InsertRow then
	// take one statement, and DeleteSelectRows works. Where it is false,
	// DeleteSelectRows returns an error wrapping [errors.ErrUnsupported]:
	// check Returning rather than the error.
	Returning() bool

	// MigrationSQL returns the DDL that Migrate runs, for users who apply
	// schema changes with their own tools.
	MigrationSQL() string
	// Migrate creates cqrsync's own tables (outbox, tombstones) if they do
	// not exist. It is safe to run any number of times.
	Migrate(ctx context.Context, ex Executor) error
	// AddVersionColumnSQL returns the DDL that adds one of the two version
	// columns every master and replica table carries, column being
	// "cqrs_revision" (INTEGER NOT NULL DEFAULT 0) or "cqrs_updated" (this
	// database's timestamp type), for a schema check to tell the user what
	// to run.
	AddVersionColumnSQL(table, column string) string
	// TableColumns describes the columns of table, in table order. It
	// returns an error wrapping ErrNoTable when the table does not exist.
	TableColumns(ctx context.Context, ex Executor, table string) ([]Column, error)

	// InsertOutbox adds rows to the outbox; their ID fields are ignored.
	InsertOutbox(ctx context.Context, ex Executor, rows []OutboxRow) error
	// ClaimOutbox leases up to params.Limit unleased rows, lowest IDs first,
	// until params.LeaseUntil, and returns them sorted by ID. Two relays
	// never hold a lease on the same row at the same time.
	ClaimOutbox(ctx context.Context, ex Executor, params *ClaimOutboxParams) ([]OutboxRow, error)
	// DeleteOutbox removes rows by ID (after the broker confirmed them).
	DeleteOutbox(ctx context.Context, ex Executor, ids []int64) error
	// ReleaseOutbox drops the lease on rows by ID so another relay may claim
	// them at once.
	ReleaseOutbox(ctx context.Context, ex Executor, ids []int64) error
	// OutboxStats reports the backlog.
	OutboxStats(ctx context.Context, ex Executor) (*OutboxStats, error)
	// EmitOutbox writes events into PostgreSQL's write-ahead log instead of
	// the outbox table, in the caller's transaction, for a WAL relay
	// (package outbox/pgwal); see [WALMessagePrefix] and
	// [AppendWALMessage]. Other databases return an error wrapping
	// errors.ErrUnsupported.
	EmitOutbox(ctx context.Context, ex Executor, rows []OutboxRow) error
	// RetractWALMessage writes, in the same transaction, a message that
	// cancels the event EmitOutbox or InsertRow wrote at position lsn: a
	// WAL relay drops both. (The log cannot be rewritten; this is how
	// InsertRow's predicted event is replaced when the stored row differs.)
	RetractWALMessage(ctx context.Context, ex Executor, lsn int64) error

	// TouchRows sets cqrs_updated and bumps (or resets) cqrs_revision of
	// master rows by primary key, and returns how many rows it changed. A
	// reset (a create) continues after the key's tombstone, if any, so a
	// re-created key's revisions never go backwards.
	TouchRows(ctx context.Context, ex Executor, params *TouchRowsParams) (int64, error)
	// TouchSelectRows is TouchRows followed by SelectRows of the touched
	// rows' columns (at most 9998 keys): one UPDATE … RETURNING where the
	// database has it (PostgreSQL, SQLite), two statements elsewhere. Rows
	// come in no particular order; a missing key is simply absent.
	TouchSelectRows(ctx context.Context, ex Executor, params *TouchRowsParams, columns []string) (Rows, error)
	// InsertRow inserts one master row with cqrs_revision 0 (or one more
	// than the key's tombstone) and cqrs_updated params.Updated, and
	// returns it as stored, with the given columns: one INSERT … RETURNING
	// where the database has it (PostgreSQL, SQLite), an INSERT and a
	// SELECT by key elsewhere (which then needs params.Key).
	//
	// When params.Outbox is set and the database can write both rows in one
	// statement (PostgreSQL, with a data-modifying WITH), the outbox row is
	// inserted too (or, with params.OutboxWAL, the event is written into
	// the write-ahead log), and each returned row carries the outbox row's
	// id (the WAL message's position) as one more, last, column: withOutbox
	// is then true. Otherwise the caller writes the event.
	InsertRow(ctx context.Context, ex Executor, params *InsertRowParams, columns []string) (rows Rows, withOutbox bool, err error)
	// SelectRows reads rows by primary key, or a keyset page (never OFFSET).
	SelectRows(ctx context.Context, ex Executor, params *SelectRowsParams) (Rows, error)
	// CountRows counts the rows of table that match all of where (every
	// row when where is empty).
	CountRows(ctx context.Context, ex Executor, table string, where []Cond) (int64, error)
	// DeleteAllRows deletes every row of table and returns how many it
	// deleted.
	DeleteAllRows(ctx context.Context, ex Executor, table string) (int64, error)
	// DeleteRows deletes rows by primary key and returns how many it deleted.
	DeleteRows(ctx context.Context, ex Executor, table, pkColumn string, pks []any) (int64, error)
	// DeleteSelectRows deletes rows by primary key (at most 10000 keys) and
	// returns the given columns of the rows it deleted, as they were, with
	// one DELETE … RETURNING (PostgreSQL, SQLite). Rows come in no
	// particular order; a missing key is simply absent. Where the database
	// lacks DELETE … RETURNING (see Returning) it returns an error wrapping
	// [errors.ErrUnsupported], having done nothing: read the rows with
	// SelectRows, then DeleteRows.
	DeleteSelectRows(ctx context.Context, ex Executor, table, pkColumn string, pks []any, columns []string) (Rows, error)

	// Upsert writes one replica row, guarded: it inserts the row, or updates
	// it when params.Guard lets the incoming cqrs_revision replace the
	// stored one; either way it writes nothing when a tombstone for the key
	// is not older (see [UpsertParams]). It returns 1 when the row was
	// written, 0 when a guard dropped it.
	Upsert(ctx context.Context, ex Executor, params *UpsertParams) (int64, error)
	// LockKeys serialises transactions that apply events for the same keys,
	// across consumer processes, until the transaction ends. Call it first in
	// the transaction with all its keys; they are locked in sorted order, so
	// two transactions never wait for each other in a cycle. Where the
	// guarded statements already serialise (SQLite's single writer, InnoDB's
	// locking reads in INSERT ... SELECT) it does nothing. On a [Deferrer]
	// the lock statement is deferred: it goes out with the next statement,
	// which still starts only once the locks are held.
	LockKeys(ctx context.Context, ex Executor, keys []string) error
	// UpsertBatch writes many replica rows with one guarded statement per
	// chunk: each row as Upsert would write it. No key may appear twice. It
	// returns, aligned with params.Rows, what it found and did for each row
	// (for logs and counters: what is written is decided by the guards in
	// SQL). On PostgreSQL the report comes from the writing statement itself
	// (one round trip per chunk); elsewhere from two reads before it.
	UpsertBatch(ctx context.Context, ex Executor, params *UpsertBatchParams) ([]UpsertResult, error)
	// DeleteGuarded deletes one replica row unless the stored row is newer
	// than the delete (cqrs_revision >= params.Revision) or a tombstone of
	// the key is not older than the delete (revision and updated time both
	// as high: the DELETE was delivered again, and a row there now is a
	// re-creation), and records or raises the tombstone in the same call.
	// It returns the rows deleted.
	DeleteGuarded(ctx context.Context, ex Executor, params *DeleteGuardedParams) (int64, error)
	// DeleteGuardedBatch is DeleteGuarded for many rows, no key twice: it
	// deletes each row unless its guards keep it (as in DeleteGuarded),
	// records or raises every key's tombstone, and returns, aligned with
	// params.Rows, whether each row was deleted. PostgreSQL runs two
	// statements for the whole batch; the others two per row.
	DeleteGuardedBatch(ctx context.Context, ex Executor, params *DeleteGuardedBatchParams) ([]bool, error)
	// RecordTombstones records deleted keys (a master's deletes, so a
	// re-created key continues its revisions), keeping the newest per key.
	// On a [Deferrer] the write is deferred (DeleteGuarded and
	// DeleteGuardedBatch record theirs the same way).
	RecordTombstones(ctx context.Context, ex Executor, tombstones []Tombstone) error
	// PurgeTombstones deletes tombstones recorded before before.
	PurgeTombstones(ctx context.Context, ex Executor, before time.Time) (int64, error)
	// KeyVersion reads one replica key's stored revision and its
	// tombstone's, with one statement: what a read-your-writes wait
	// compares a token with.
	KeyVersion(ctx context.Context, ex Executor, params *KeyVersionParams) (KeyVersion, error)
}

// KeyVersionParams names one replica key for KeyVersion.
type KeyVersionParams struct {
	// Table and PKColumn name the replica table and its key column.
	Table, PKColumn string
	// PK is the key as a value of the key column.
	PK any
	// CQRSID and Key name the key's tombstone: Key is the key's canonical
	// text, as DeleteGuardedParams.Key.
	CQRSID, Key string
}

// KeyVersion is a replica key's stored state.
type KeyVersion struct {
	// Revision is the row's cqrs_revision, -1 when there is no row.
	Revision int64
	// TombstoneRevision is the revision of the key's tombstone (its last
	// DELETE), -1 when there is none.
	TombstoneRevision int64
}

// Names of cqrsync's own tables, which Migrate creates.
const (
	OutboxTable     = "cqrs_outbox"
	TombstonesTable = "cqrs_tombstones"
)

// MigrationColumns returns the tables the current migration of d creates,
// each with its columns in table order: what a schema check compares with
// the database to know that Migrate has run and that the tables are the
// current version's. The migration carries no version record; it stays
// idempotent instead (CREATE ... IF NOT EXISTS, and a later version adds
// its columns with statements safe to run again), so running Migrate again
// is the upgrade path, and these columns tell whether it is needed.
func MigrationColumns(d Dialect) map[string][]string {
	outbox := []string{"id", "cqrs_id", "queue", "body", "created_us", "lease_us"}
	if d.Name() == "mysql" {
		outbox = append(outbox, "lease_token") // MySQL has no RETURNING: a claim reads its rows back by token
	}
	outbox = append(outbox, "headers") // migration 002: trace context and correlation id
	tables := map[string][]string{
		OutboxTable:     outbox,
		TombstonesTable: {"cqrs_id", "pk", "revision", "updated_us", "deleted_us"},
	}
	if d.Name() == "mysql" {
		tables[CaptureMarksTable] = []string{"conn_id"} // migration 003: library capture marks for the capture triggers
	}
	return tables
}

// ErrNoTable is wrapped by TableColumns when the table does not exist.
var ErrNoTable = errors.New("sqldialect: table does not exist")

// ErrUnknownUniqueKey is returned (wrapped) by Upsert and UpsertBatch on
// MySQL when a row was not written because it met a unique key other than
// the primary key that the call did not declare (UniqueKeys false: the
// table's columns were read before the key was added). No other row was
// written. Read the table's columns again and write the row with
// UniqueKeys: it then fails with the server's duplicate-key error, or
// goes through.
var ErrUnknownUniqueKey = errors.New("sqldialect: the row conflicts on a unique key besides the primary key that the write was not told of: read the table's columns again (TableColumns) and set UniqueKeys")

// Column describes one column of a table.
type Column struct {
	// Name is the column name.
	Name string
	// DeclaredType is the type as the database reports it (e.g.
	// "VARCHAR(200)", "numeric", "timestamp with time zone").
	DeclaredType string
	// Nullable is true when the column accepts NULL.
	Nullable bool
	// HasDefault is true when the column has a default value (or is
	// generated, e.g. an auto-increment key).
	HasDefault bool
	// PrimaryKey is true for the (first) primary key column.
	PrimaryKey bool
	// Unique is true when the column belongs to a unique key other than
	// the primary key. Only the MySQL dialect reports it, the one whose
	// upserts must know (see UpsertParams.UniqueKeys); it is false
	// elsewhere.
	Unique bool
}

// OutboxRow is one event waiting in the outbox.
type OutboxRow struct {
	ID int64
	// CQRSID and Queue route the event (see transport.Message).
	CQRSID string
	Queue  string
	// Body is the encoded payload.
	Body []byte
	// CreatedAt is when the change committed (approximately: when it was
	// captured), in UTC.
	CreatedAt time.Time
	// Headers travel beside the body as the transport message's headers
	// (the correlation ID, a trace context); stored as a JSON object in the
	// headers column. Nil when none.
	Headers map[string]string
}

// ClaimOutboxParams configures ClaimOutbox.
type ClaimOutboxParams struct {
	// Limit is the most rows to claim.
	Limit int
	// Now is the current time; rows whose lease ended before it are free.
	Now time.Time
	// LeaseUntil is when the new lease ends, if the relay neither deletes nor
	// releases the rows before.
	LeaseUntil time.Time
}

// OutboxStats is the outbox backlog.
type OutboxStats struct {
	// Rows is the number of events waiting.
	Rows int64
	// Oldest is when the oldest waiting event was captured; zero when Rows
	// is 0.
	Oldest time.Time
}

// Tombstone remembers a deleted key.
type Tombstone struct {
	CQRSID string
	// Key is the primary key's canonical text.
	Key string
	// Revision and Updated are the DELETE's cqrs_revision and cqrs_updated.
	Revision int64
	Updated  time.Time
	// At is when the tombstone was recorded (for the retention).
	At time.Time
}

// TouchRowsParams configures TouchRows.
type TouchRowsParams struct {
	// CQRSID names the model in the tombstone table (for Reset).
	CQRSID   string
	Table    string
	PKColumn string
	PKs      []any
	// Updated is the new cqrs_updated.
	Updated time.Time
	// Reset sets cqrs_revision to 0 (a create), or to one more than the
	// key's tombstone; otherwise the revision is raised by 1.
	Reset bool
	// Columns and Values, when set, are more columns to write in the same
	// UPDATE, with their values (Master.UpdateRow: the caller's change and
	// its capture in one statement).
	Columns []string
	Values  []any
}

// InsertRowParams configures InsertRow.
type InsertRowParams struct {
	CQRSID   string
	Table    string
	PKColumn string
	// Columns and Values are the row to insert, aligned, without
	// cqrs_revision and cqrs_updated.
	Columns []string
	Values  []any
	// Key is the primary key's canonical text, for the tombstone lookup;
	// empty when the database generates the key (the row then starts at
	// revision 0).
	Key string
	// Updated is the new cqrs_updated.
	Updated time.Time
	// Outbox, when not nil, is an event to insert in the same statement,
	// where the database can (see InsertRow).
	Outbox *OutboxRow
	// OutboxWAL writes Outbox into the write-ahead log (as EmitOutbox
	// does) instead of the outbox table; the extra column returned is then
	// the message's position, which RetractWALMessage takes.
	OutboxWAL bool
}

// SelectRowsParams configures SelectRows. Exactly one of PKs and Page is
// used: with PKs, the rows with those keys; otherwise a keyset page.
type SelectRowsParams struct {
	Table    string
	PKColumn string
	// Columns to read, in order.
	Columns []string
	// PKs selects rows by key.
	PKs []any
	// After, when not nil, starts the page after this key (keyset paging,
	// ordered by the primary key).
	After any
	// Limit bounds a page; 0 means no limit.
	Limit int
	// Where selects the rows that match all these conditions (a parsed
	// filter); empty for none.
	Where []Cond
	// ForUpdate locks the selected rows where the database supports it.
	ForUpdate bool
}

// Guard is the revision guard of Upsert and UpsertBatch: which stored rows
// an incoming row of cqrs_revision r may overwrite. A missing row is always
// inserted, and the tombstone guard applies whatever the Guard.
type Guard int

// The revision guards, from the strictest.
const (
	// GuardNewer overwrites a stored row only when its revision is lower
	// than r: a SAVE (an equal revision is a duplicate, a higher one newer
	// than the event).
	GuardNewer Guard = iota
	// GuardNotOlder also overwrites a stored row at revision r, repairing
	// content that drifted, but never a newer one: a SYNC broadcast to
	// every replica, which may have been read before a change it arrives
	// after.
	GuardNotOlder
	// GuardAny overwrites the stored row whatever its revision, even a
	// newer one (a downgrade): a SYNC sent to one replica's queue alone,
	// an operator's repair of a replica that drifted ahead of its master.
	GuardAny
)

// String returns the Guard's constant name.
func (g Guard) String() string {
	switch g {
	case GuardNewer:
		return "GuardNewer"
	case GuardNotOlder:
		return "GuardNotOlder"
	case GuardAny:
		return "GuardAny"
	}
	return fmt.Sprintf("Guard(%d)", int(g))
}

// valid reports whether g is one of the Guard constants.
func (g Guard) valid() bool { return g >= GuardNewer && g <= GuardAny }

// wins reports whether the guard lets a row of revision incoming overwrite
// a stored row of revision stored: what revisionCondition decides in SQL,
// for the reports that are worked out in Go.
func (g Guard) wins(stored, incoming int64) bool {
	switch g {
	case GuardNotOlder:
		return stored <= incoming
	case GuardAny:
		return true
	}
	return stored < incoming
}

// UpsertParams configures Upsert.
type UpsertParams struct {
	Table    string
	PKColumn string
	// Columns and Values are the row to write, aligned; they include the
	// primary key, cqrs_revision and cqrs_updated.
	Columns []string
	Values  []any
	// Revision is the incoming cqrs_revision.
	Revision int64
	// Guard says which stored revisions the row may overwrite: the zero
	// value, GuardNewer, only lower ones.
	Guard Guard
	// CQRSID, Key and Updated identify the event for the tombstone guard:
	// the row is not written when a tombstone for (CQRSID, Key) has a
	// revision >= Revision and an updated time >= Updated. (A master that
	// re-creates a deleted key restarts at revision 0 with a later
	// cqrs_updated: that SAVE passes.)
	CQRSID  string
	Key     string
	Updated time.Time
	// UniqueKeys says that the table has a unique key besides its primary
	// key (a column TableColumns reports Unique). MySQL's ON DUPLICATE KEY
	// UPDATE fires for a conflict on any unique key, and would update the
	// row that holds the incoming row's value of that other key: with
	// UniqueKeys, MySQL writes the row with an UPDATE by primary key when
	// it exists and a plain INSERT when it does not, so that such a
	// conflict fails with the server's duplicate-key error (1062), as it
	// does on PostgreSQL and SQLite, whose upserts name the primary key
	// and ignore this field. Set it from TableColumns: without it, MySQL
	// still never writes another key's row, and returns
	// ErrUnknownUniqueKey for the incoming one.
	UniqueKeys bool
}

// UpsertBatchParams configures UpsertBatch. Every row has the same
// columns.
type UpsertBatchParams struct {
	Table    string
	PKColumn string
	Columns  []string
	// Types are the columns' declared SQL types (from TableColumns), used
	// where the database needs typed parameters.
	Types []string
	// Rows are the rows to write, no key twice.
	Rows []UpsertRow
	// Guard applies to every row, as in UpsertParams: a batch never mixes
	// guards.
	Guard Guard
	// CQRSID, with each row's Key, Revision and Updated, drives the
	// tombstone guard and the revision guard, as in UpsertParams.
	CQRSID string
	// UniqueKeys says that the table has a unique key besides its primary
	// key, as in UpsertParams: on MySQL the rows that exist are then
	// written with one UPDATE and the others with one plain INSERT.
	UniqueKeys bool
}

// UpsertRow is one row of [UpsertBatchParams].
type UpsertRow struct {
	// Values holds one value per column of UpsertBatchParams.Columns.
	Values []any
	// Key is the row's key as text, its tombstone's key.
	Key string
	// Revision is the row's cqrs_revision, for the guards.
	Revision int64
	// Updated is the row's cqrs_updated, for the tombstone guard.
	Updated time.Time
}

// UpsertResult is what UpsertBatch found and did for one row.
type UpsertResult struct {
	// Written is true when the row was inserted or updated; false when a
	// guard dropped it (a tombstone not older than the row, or a stored
	// revision that the batch's Guard keeps).
	Written bool
	// Existed is true when a row with the key was stored before the
	// statement, and StoredRevision is then its cqrs_revision.
	Existed        bool
	StoredRevision int64
}

// DeleteGuardedParams configures DeleteGuarded.
type DeleteGuardedParams struct {
	Table    string
	PKColumn string
	PK       any
	// Revision is the DELETE's cqrs_revision (the master's stored revision
	// plus one).
	Revision int64
	// CQRSID, Key, Updated and Now make the tombstone: (CQRSID, Key) with
	// Revision and Updated, recorded at Now.
	CQRSID  string
	Key     string
	Updated time.Time
	Now     time.Time
}

// DeleteGuardedBatchParams configures DeleteGuardedBatch: per row, the key
// (PKs, and its canonical text in Keys), the DELETE's Revisions and
// Updated, as in DeleteGuardedParams.
type DeleteGuardedBatchParams struct {
	Table    string
	PKColumn string
	// PKType is the key column's declared SQL type (from TableColumns),
	// used where the database needs typed parameters.
	PKType string
	CQRSID string
	// Rows are the rows to delete, no key twice.
	Rows []DeleteGuardedRow
	// Now is when the tombstones are recorded.
	Now time.Time
}

// DeleteGuardedRow is one row of [DeleteGuardedBatchParams], as in
// [DeleteGuardedParams].
type DeleteGuardedRow struct {
	// PK is the row's primary key.
	PK any
	// Key is the key as text, the tombstone's key.
	Key string
	// Revision is the DELETE's cqrs_revision.
	Revision int64
	// Updated is the DELETE's cqrs_updated.
	Updated time.Time
}

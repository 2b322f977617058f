package cqrsync

import (
	"context"
	"time"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// The root package's parts each own the small part of sqldialect.Dialect
// they use, so what a capture, an apply or a schema check asks of a
// database reads in one place, and a new Dialect method reaches none of
// them by accident. A driver's Dialect satisfies them all.

// captureStore is what a Master asks of its dialect: reading, bumping,
// inserting and deleting master rows, and writing the outbox (the table or
// PostgreSQL's write-ahead log) and the tombstones of deleted keys in the
// caller's transaction.
type captureStore interface {
	Returning() bool
	SelectRows(ctx context.Context, ex sqldialect.Executor, params *sqldialect.SelectRowsParams) (sqldialect.Rows, error)
	CountRows(ctx context.Context, ex sqldialect.Executor, table string, where []sqldialect.Cond) (int64, error)
	TouchRows(ctx context.Context, ex sqldialect.Executor, params *sqldialect.TouchRowsParams) (int64, error)
	TouchSelectRows(ctx context.Context, ex sqldialect.Executor, params *sqldialect.TouchRowsParams, columns []string) (sqldialect.Rows, error)
	InsertRow(ctx context.Context, ex sqldialect.Executor, params *sqldialect.InsertRowParams, columns []string) (rows sqldialect.Rows, withOutbox bool, err error)
	DeleteRows(ctx context.Context, ex sqldialect.Executor, table, pkColumn string, pks []any) (int64, error)
	DeleteSelectRows(ctx context.Context, ex sqldialect.Executor, table, pkColumn string, pks []any, columns []string) (sqldialect.Rows, error)
	RecordTombstones(ctx context.Context, ex sqldialect.Executor, tombstones []sqldialect.Tombstone) error
	InsertOutbox(ctx context.Context, ex sqldialect.Executor, rows []sqldialect.OutboxRow) error
	DeleteOutbox(ctx context.Context, ex sqldialect.Executor, ids []int64) error
	EmitOutbox(ctx context.Context, ex sqldialect.Executor, rows []sqldialect.OutboxRow) error
	RetractWALMessage(ctx context.Context, ex sqldialect.Executor, lsn int64) error
	KeyVersion(ctx context.Context, ex sqldialect.Executor, params *sqldialect.KeyVersionParams) (sqldialect.KeyVersion, error)
}

// applyStore is what a Replica asks of its dialect: key locks, the guarded
// writes of SAVE and DELETE events with their tombstones, and key reads
// (a key's version, for WaitFor).
type applyStore interface {
	SelectRows(ctx context.Context, ex sqldialect.Executor, params *sqldialect.SelectRowsParams) (sqldialect.Rows, error)
	LockKeys(ctx context.Context, ex sqldialect.Executor, keys []string) error
	Upsert(ctx context.Context, ex sqldialect.Executor, params *sqldialect.UpsertParams) (int64, error)
	UpsertBatch(ctx context.Context, ex sqldialect.Executor, params *sqldialect.UpsertBatchParams) ([]sqldialect.UpsertResult, error)
	DeleteGuarded(ctx context.Context, ex sqldialect.Executor, params *sqldialect.DeleteGuardedParams) (int64, error)
	DeleteGuardedBatch(ctx context.Context, ex sqldialect.Executor, params *sqldialect.DeleteGuardedBatchParams) ([]bool, error)
	DeleteRows(ctx context.Context, ex sqldialect.Executor, table, pkColumn string, pks []any) (int64, error)
	PurgeTombstones(ctx context.Context, ex sqldialect.Executor, before time.Time) (int64, error)
	KeyVersion(ctx context.Context, ex sqldialect.Executor, params *sqldialect.KeyVersionParams) (sqldialect.KeyVersion, error)
}

// schemaStore is what the table metadata cache asks of a dialect.
type schemaStore interface {
	TableColumns(ctx context.Context, ex sqldialect.Executor, table string) ([]sqldialect.Column, error)
	AddVersionColumnSQL(table, column string) string
}

var (
	_ captureStore = sqldialect.Dialect(nil)
	_ applyStore   = sqldialect.Dialect(nil)
	_ schemaStore  = sqldialect.Dialect(nil)
)

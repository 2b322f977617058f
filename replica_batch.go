package cqrsync

import (
	"context"
	"fmt"
	"strings"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// ApplyBatch applies events through ex with the rules of Apply, in order,
// and returns each event's outcome. ex must be a transaction: ApplyBatch
// first locks the events' keys until it ends (see sqldialect LockKeys), so
// that consumer processes sharing a queue cannot interleave the events of
// one key. SAVEs and SYNCs of plain table models
// (no handlers, row locks or query timeout) are written with one guarded
// multi-row statement per model and column set, which is many times faster
// than one statement per event, and their DELETEs with one
// DeleteGuardedBatch per model; the other events go through Apply. Events
// for the same key are applied in their order (in successive statements).
//
// On an error, part of the batch may have been written through ex: the
// caller rolls back. (The consumer then applies the batch one event at a
// time, to find the event at fault.)
func (r *Replica) ApplyBatch(ctx context.Context, ex sqldialect.Executor, ps []*Payload) ([]Outcome, error) {
	outs := make([]Outcome, len(ps))
	// Another consumer process may apply events for the same keys at the
	// same time: hold the keys until this transaction ends.
	lockKeys := make([]string, len(ps))
	for i, p := range ps {
		lockKeys[i] = p.CQRSID + "\x1f" + keyString(p.InstancePK) // no NUL: PostgreSQL text cannot hold it
	}
	if err := r.dialect.LockKeys(ctx, ex, lockKeys); err != nil {
		return outs, err
	}
	// A wave holds at most one event per key; waves run in order, so a
	// key's events keep their order, and no statement touches a row twice.
	var waves [][]int
	seen := make(map[string]int, len(ps))
	for i, p := range ps {
		k := p.CQRSID + "\x00" + keyString(p.InstancePK)
		w := seen[k]
		seen[k] = w + 1
		if w == len(waves) {
			waves = append(waves, nil)
		}
		waves[w] = append(waves[w], i)
	}
	for _, wave := range waves {
		if err := r.applyWave(ctx, ex, ps, wave, outs); err != nil {
			return outs, err
		}
	}
	return outs, nil
}

// batchGroup is a wave's events that one UpsertBatch writes.
type batchGroup struct {
	rm    *ReplicaModel
	ti    *tableInfo
	guard sqldialect.Guard
	idx   []int
	rows  []*saveRow
}

func (rm *ReplicaModel) plain() bool {
	return !rm.NoDBOperations && rm.OnSave == nil && rm.OnDelete == nil && !rm.SelectForUpdate && rm.QueryTimeout == 0
}

// deleteGroup is a wave's DELETEs of one plain model, written by one
// DeleteGuardedBatch.
type deleteGroup struct {
	rm     *ReplicaModel
	ti     *tableInfo
	idx    []int
	params sqldialect.DeleteGuardedBatchParams
}

func (r *Replica) applyWave(ctx context.Context, ex sqldialect.Executor, ps []*Payload, wave []int, outs []Outcome) error {
	groups := map[string]*batchGroup{}
	var order []*batchGroup
	deletes := map[string]*deleteGroup{}
	var deleteOrder []*deleteGroup
	for _, i := range wave {
		p := ps[i]
		rm, ok := r.Model(p.CQRSID)
		if ok && rm.plain() && p.SignalType == SignalDelete {
			ti, err := r.tables.get(ctx, ex, rm.CQRSID, rm.Table, rm.Types)
			if err != nil {
				return err
			}
			pk, rev, updated, err := deleteVersion(rm, ti, p)
			if err != nil {
				return err
			}
			g := deletes[rm.CQRSID]
			if g == nil {
				g = &deleteGroup{rm: rm, ti: ti, params: sqldialect.DeleteGuardedBatchParams{
					Table: rm.Table, PKColumn: rm.PK, PKType: ti.columns[ti.byName[rm.PK]].DeclaredType,
					CQRSID: rm.CQRSID, Now: r.cfg.Now(),
				}}
				deletes[rm.CQRSID] = g
				deleteOrder = append(deleteOrder, g)
			}
			g.idx = append(g.idx, i)
			g.params.Rows = append(g.params.Rows, sqldialect.DeleteGuardedRow{PK: pk, Key: keyString(pk), Revision: rev, Updated: updated})
			continue
		}
		batchable := ok && rm.plain() && (p.SignalType == SignalSave || (p.SignalType == SignalSync && (!rm.OnlyDirectSyncs || p.Queue != "")))
		if !batchable {
			out, err := r.Apply(ctx, ex, p)
			if err != nil {
				return err
			}
			outs[i] = out
			continue
		}
		ti, err := r.tables.get(ctx, ex, rm.CQRSID, rm.Table, rm.Types)
		if err != nil {
			return err
		}
		row, err := prepareSave(rm, ti, p)
		if err != nil {
			return err
		}
		// One statement has one revision guard: a group never mixes SAVEs,
		// broadcast SYNCs and SYNCs sent to this queue alone.
		guard := p.revisionGuard()
		key := fmt.Sprintf("%s\x00%d\x00%s", rm.CQRSID, guard, strings.Join(row.cols, ","))
		g := groups[key]
		if g == nil {
			g = &batchGroup{rm: rm, ti: ti, guard: guard}
			groups[key] = g
			order = append(order, g)
		}
		g.idx = append(g.idx, i)
		g.rows = append(g.rows, row)
	}
	for _, g := range order {
		if err := r.upsertGroup(ctx, ex, ps, g, outs); err != nil {
			return err
		}
	}
	for _, g := range deleteOrder {
		deleted, err := r.dialect.DeleteGuardedBatch(ctx, ex, &g.params)
		if err != nil {
			return r.tables.evictStale(g.rm.CQRSID, g.ti, err)
		}
		for j, i := range g.idx {
			outs[i] = OutcomeNoop
			if deleted[j] {
				outs[i] = OutcomeDeleted
			}
		}
	}
	return nil
}

// upsertGroup writes a group with one guarded statement. The outcomes, for
// the logs and counters, come from the dialect's report of what it found
// and wrote; what is written is decided by the guards in SQL, so a
// concurrent writer cannot make it wrong.
func (r *Replica) upsertGroup(ctx context.Context, ex sqldialect.Executor, ps []*Payload, g *batchGroup, outs []Outcome) error {
	params := &sqldialect.UpsertBatchParams{
		Table: g.rm.Table, PKColumn: g.rm.PK, Columns: g.rows[0].cols, Guard: g.guard, CQRSID: g.rm.CQRSID,
		Rows: make([]sqldialect.UpsertRow, len(g.rows)), UniqueKeys: g.ti.uniqueKeys,
	}
	params.Types = make([]string, len(params.Columns))
	for i, c := range params.Columns {
		params.Types[i] = g.ti.columns[g.ti.byName[c]].DeclaredType
	}
	for i, row := range g.rows {
		params.Rows[i] = sqldialect.UpsertRow{Values: row.vals, Key: keyString(row.pk), Revision: row.rev, Updated: row.updated}
	}
	res, err := r.dialect.UpsertBatch(ctx, ex, params)
	if err != nil {
		return r.tables.evictStale(g.rm.CQRSID, g.ti, err)
	}
	for i, row := range g.rows {
		st := res[i].StoredRevision
		out := saveOutcome(g.guard, res[i].Written, res[i].Existed, row.rev, st)
		outs[g.idx[i]] = out
		r.logOutcome(ctx, ps[g.idx[i]], row.pk, row.rev, st, out)
	}
	return nil
}

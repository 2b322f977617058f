package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// A drift check (Verify) compares a master and a replica by ranges of keys
// with checksums of the replicated fields, narrows the ranges that differ,
// and reports (and optionally repairs) the keys that differ. Unlike the diff
// pipes it compares content, not revisions, so it finds a replica row edited
// by hand or a value cut by the replica's database.

// BucketRequest asks a Side for the buckets of a key range.
type BucketRequest struct {
	// CQRSID names the model.
	CQRSID string
	// After is the range's exclusive lower bound (a primary key as a wire
	// value); nil starts at the first key.
	After any
	// Until is the range's inclusive upper bound; nil ends at the last key.
	Until any
	// Size cuts the range into buckets of at most Size keys, in the side's
	// key order. Ignored when Bounds is set.
	Size int
	// Limit, with Size, stops after Limit buckets (the last one full); 0
	// cuts the whole range. The caller asks again after the last bucket's
	// Hi.
	Limit int
	// Bounds are the inclusive upper bounds of consecutive buckets that
	// start after After: bucket i holds the keys in (Bounds[i-1], Bounds[i]].
	// A nil bound (last only) is unbounded.
	Bounds []any
	// Fields are the master's field names to hash, in order.
	Fields []string
}

// Bucket is the checksum of a key range on one side.
type Bucket struct {
	// Hi is the range's inclusive upper bound: the last key of a cut bucket,
	// or the requested bound.
	Hi any
	// Count is the number of keys in the range.
	Count int64
	// Hashes holds one checksum per requested field: the sum, modulo 2^64,
	// of a 64-bit hash of each row's primary key and the field's value in
	// its canonical wire encoding (the JSON bytes an event carries). Equal
	// ranges have equal sums whatever the order rows are read in.
	Hashes []uint64
}

// Side is one end of a drift check: a master or a replica, local (its
// database) or remote (VerifyClient).
type Side interface {
	// Fields returns the master field names the side holds for a model:
	// for a master, those of its instance_data (nil when it has no row);
	// for a replica, those its Mapping keeps and its table stores.
	Fields(ctx context.Context, cqrsID string) ([]string, error)
	// Buckets returns the checksums of a key range, cut by Size or by
	// Bounds (one bucket per bound).
	Buckets(ctx context.Context, req *BucketRequest) ([]Bucket, error)
}

// MasterSide is a master's end of a drift check, which can also resend rows.
type MasterSide interface {
	Side
	// Resync sends a SYNC of each of keys that exists to the replica queue
	// (the repair of the diff pipes: a one-queue SYNC overwrites the row)
	// and returns how many it sent.
	Resync(ctx context.Context, cqrsID string, keys []any, queue string) (int64, error)
}

// ReplicaSide is a replica's end of a drift check, which can also delete
// the rows its master does not have.
type ReplicaSide interface {
	Side
	// DeleteKeys deletes the rows with the given keys.
	DeleteKeys(ctx context.Context, cqrsID string, keys []any) (int64, error)
}

// VerifyOpts configures Verify.
type VerifyOpts struct {
	// Sizes are the bucket sizes of the walk, largest first: the whole
	// table is compared in buckets of Sizes[0] keys, a bucket that differs
	// in buckets of Sizes[1], and so on; a bucket that still differs is
	// compared key by key. Default [4096, 64].
	Sizes []int
	// Fields limits the check to these master fields. Default: every field
	// both sides hold except cqrs_updated (a replica may store it with less
	// precision; the revision is checked).
	Fields []string
	// Repair resends the rows that differ or are missing (one-queue SYNCs
	// to Queue, through the master's outbox) and deletes the replica rows
	// the master does not have. Default false: report only.
	Repair bool
	// Queue is the replica's queue, where repairs are sent. Required with
	// Repair.
	Queue string
}

// VerifyReport is what Verify found (and repaired).
type VerifyReport struct {
	CQRSID string
	// Fields are the master fields compared.
	Fields []string
	// Differ are the keys whose content differs, with the fields that
	// differ in DifferFields (aligned).
	Differ       []any
	DifferFields [][]string
	// Missing are the master's keys the replica lacks.
	Missing []any
	// Extra are the replica's keys the master lacks.
	Extra []any
	// MasterRows and ReplicaRows count the rows each side read.
	MasterRows, ReplicaRows int64
	// Requests counts the bucket requests, both sides together.
	Requests int
	// Resynced and Deleted count the repairs (with VerifyOpts.Repair).
	Resynced, Deleted int64
}

// Clean reports whether the check found no difference.
func (r *VerifyReport) Clean() bool {
	return len(r.Differ) == 0 && len(r.Missing) == 0 && len(r.Extra) == 0
}

// Verify compares the rows of a model on a master and a replica with a
// range-hash walk, and returns the keys that differ. Both sides checksum the
// same key ranges (the master cuts them, the replica hashes over the
// master's bounds), over the master's field names: a replica that maps or
// renames fields compares just those it keeps, converted back to wire
// values. It reads every row of both tables once, plus the rows of the
// ranges that differ, but exchanges only checksums and the differing keys.
// Rows changed while the check runs may be reported; check again. With
// opts.Repair it then repairs only the keys found.
func Verify(ctx context.Context, master MasterSide, replica ReplicaSide, cqrsID string, opts *VerifyOpts) (*VerifyReport, error) {
	if opts == nil {
		opts = &VerifyOpts{}
	}
	if opts.Repair && opts.Queue == "" {
		return nil, errors.New("cqrsync: verify: repairs are sent to the replica's queue: set VerifyOpts.Queue (--queue)")
	}
	sizes := opts.Sizes
	if sizes == nil {
		sizes = []int{4096, 64}
	}
	for _, s := range sizes {
		if s < 2 {
			return nil, fmt.Errorf("cqrsync: verify: bucket size %d: sizes must be at least 2", s)
		}
	}
	fields, err := verifyFields(ctx, master, replica, cqrsID, opts.Fields)
	if err != nil {
		return nil, err
	}
	w := &walker{master: master, replica: replica, sizes: sizes, rep: &VerifyReport{CQRSID: cqrsID, Fields: fields}}
	if err := w.check(ctx, nil, nil, 0); err != nil {
		return w.rep, err
	}
	if opts.Repair {
		return w.rep, w.repair(ctx, cqrsID, opts.Queue)
	}
	return w.rep, nil
}

// verifyFields returns the fields to compare: those asked for, or those
// both sides hold but cqrs_updated.
func verifyFields(ctx context.Context, master, replica Side, cqrsID string, asked []string) ([]string, error) {
	rf, err := replica.Fields(ctx, cqrsID)
	if err != nil {
		return nil, fmt.Errorf("cqrsync: verify: replica: %w", err)
	}
	mf, err := master.Fields(ctx, cqrsID)
	if err != nil {
		return nil, fmt.Errorf("cqrsync: verify: master: %w", err)
	}
	if asked != nil {
		for _, f := range asked {
			if !slices.Contains(rf, f) {
				return nil, fmt.Errorf("cqrsync: verify: the replica of %s does not keep field %q (it keeps %v)", cqrsID, f, rf)
			}
		}
		return asked, nil
	}
	var fields []string
	for _, f := range rf {
		if f != cqrsync.UpdatedField && (mf == nil || slices.Contains(mf, f)) {
			fields = append(fields, f)
		}
	}
	return fields, nil
}

type walker struct {
	master  MasterSide
	replica ReplicaSide
	sizes   []int
	rep     *VerifyReport
}

func (w *walker) buckets(ctx context.Context, s Side, req *BucketRequest, rows *int64) ([]Bucket, error) {
	req.CQRSID, req.Fields = w.rep.CQRSID, w.rep.Fields
	bs, err := s.Buckets(ctx, req)
	w.rep.Requests++
	for _, b := range bs {
		*rows += b.Count
	}
	return bs, err
}

// walkPage is the number of buckets per master request: the walk asks
// for the next page while the replica hashes the current one, so both
// sides read at the same time.
const walkPage = 32

// check compares the range (after, until] at a level of the walk.
func (w *walker) check(ctx context.Context, after, until any, level int) error {
	if level == len(w.sizes) {
		return w.leaf(ctx, after, until)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		bs  []Bucket
		err error
	}
	fetch := func(from any) <-chan page {
		ch := make(chan page, 1)
		req := &BucketRequest{CQRSID: w.rep.CQRSID, Fields: w.rep.Fields, After: from, Until: until, Size: w.sizes[level], Limit: walkPage}
		go func() {
			bs, err := w.master.Buckets(ctx, req)
			ch <- page{bs, err}
		}()
		return ch
	}
	next := fetch(after)
	prev := after
	for {
		p := <-next
		w.rep.Requests++
		if p.err != nil {
			return fmt.Errorf("cqrsync: verify: master: %w", p.err)
		}
		mb := p.bs
		for _, b := range mb {
			w.rep.MasterRows += b.Count
		}
		last := len(mb) < walkPage // the master has no more keys in the range
		if !last {
			next = fetch(mb[len(mb)-1].Hi) // read on while the replica hashes
		}
		if len(mb) == 0 {
			mb = []Bucket{{Hashes: make([]uint64, len(w.rep.Fields))}}
		}
		bounds := make([]any, len(mb))
		for i, b := range mb {
			bounds[i] = b.Hi
		}
		if last {
			bounds[len(bounds)-1] = until // the replica may hold keys after the master's last
		}
		rb, err := w.buckets(ctx, w.replica, &BucketRequest{After: prev, Until: until, Bounds: bounds}, &w.rep.ReplicaRows)
		if err != nil {
			return fmt.Errorf("cqrsync: verify: replica: %w", err)
		}
		if len(rb) != len(mb) {
			return fmt.Errorf("cqrsync: verify: the replica side answered %d buckets for %d bounds", len(rb), len(mb))
		}
		for i := range mb {
			if mb[i].Count != rb[i].Count || !slices.Equal(mb[i].Hashes, rb[i].Hashes) {
				// Skip the levels that would cut this bucket into one.
				deeper := level + 1
				for deeper < len(w.sizes) && mb[i].Count <= int64(w.sizes[deeper]) {
					deeper++
				}
				if err := w.check(ctx, prev, bounds[i], deeper); err != nil {
					return err
				}
			}
			prev = bounds[i]
		}
		if last {
			return nil
		}
	}
}

// leaf compares the range (after, until] key by key.
func (w *walker) leaf(ctx context.Context, after, until any) error {
	mb, err := w.buckets(ctx, w.master, &BucketRequest{After: after, Until: until, Size: 1}, &w.rep.MasterRows)
	if err != nil {
		return fmt.Errorf("cqrsync: verify: master: %w", err)
	}
	rb, err := w.buckets(ctx, w.replica, &BucketRequest{After: after, Until: until, Size: 1}, &w.rep.ReplicaRows)
	if err != nil {
		return fmt.Errorf("cqrsync: verify: replica: %w", err)
	}
	onReplica := make(map[string]Bucket, len(rb))
	for _, b := range rb {
		onReplica[wireKey(b.Hi)] = b
	}
	for _, m := range mb {
		k := wireKey(m.Hi)
		r, ok := onReplica[k]
		delete(onReplica, k)
		if !ok {
			w.rep.Missing = append(w.rep.Missing, m.Hi)
			continue
		}
		var differ []string
		for i, f := range w.rep.Fields {
			if m.Hashes[i] != r.Hashes[i] {
				differ = append(differ, f)
			}
		}
		if differ != nil {
			w.rep.Differ = append(w.rep.Differ, m.Hi)
			w.rep.DifferFields = append(w.rep.DifferFields, differ)
		}
	}
	for _, r := range rb {
		if _, ok := onReplica[wireKey(r.Hi)]; ok {
			w.rep.Extra = append(w.rep.Extra, r.Hi)
		}
	}
	return nil
}

// repair resends the rows that differ or are missing and deletes the extra
// ones, in chunks.
func (w *walker) repair(ctx context.Context, cqrsID, queue string) error {
	for chunk := range slices.Chunk(slices.Concat(w.rep.Differ, w.rep.Missing), 1000) {
		n, err := w.master.Resync(ctx, cqrsID, chunk, queue)
		w.rep.Resynced += n
		if err != nil {
			return fmt.Errorf("cqrsync: verify: resync: %w", err)
		}
	}
	for chunk := range slices.Chunk(w.rep.Extra, 1000) {
		n, err := w.replica.DeleteKeys(ctx, cqrsID, chunk)
		w.rep.Deleted += n
		if err != nil {
			return fmt.Errorf("cqrsync: verify: delete extra rows: %w", err)
		}
	}
	return nil
}

// wireKey is the canonical text of a key: its wire JSON encoding.
func wireKey(k any) string {
	b, err := cqrsync.AppendJSON(nil, k)
	if err != nil {
		return fmt.Sprint(k)
	}
	return string(b)
}

// hasher accumulates the buckets of one request.
type hasher struct {
	req   *BucketRequest
	out   []Bucket
	cur   *Bucket
	key   []byte
	value []byte
}

// add adds a row (its key and its values by master field name) to the
// current bucket.
func (h *hasher) add(pk any, get func(field string) (any, bool)) error {
	var err error
	if h.key, err = cqrsync.AppendJSON(h.key[:0], pk); err != nil {
		return fmt.Errorf("key %v: %w", pk, err)
	}
	h.cur.Count++
	h.cur.Hi = pk
	for i, f := range h.req.Fields {
		v, ok := get(f)
		h.value = append(h.value[:0], 0xff) // an absent field: not JSON
		if ok {
			if h.value, err = cqrsync.AppendJSON(h.value[:0], v); err != nil {
				return fmt.Errorf("key %v field %s: %w", pk, f, err)
			}
		}
		h.cur.Hashes[i] += rowHash(h.key, h.value)
	}
	return nil
}

// open starts a bucket.
func (h *hasher) open() {
	h.out = append(h.out, Bucket{Hashes: make([]uint64, len(h.req.Fields))})
	h.cur = &h.out[len(h.out)-1]
}

// rowHash is FNV-1a over key, a separator and value, finished with
// splitmix64's mixer so that sums of hashes spread well.
func rowHash(key, value []byte) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, c := range key {
		h = (h ^ uint64(c)) * prime
	}
	h = (h ^ 0xfe) * prime
	for _, c := range value {
		h = (h ^ uint64(c)) * prime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// rangeSource reads the rows of a key range (after, until] in key order:
// each row's key and a lookup of its values by master field name.
type rangeSource func(ctx context.Context, req *BucketRequest, after, until any, fn func(pk any, get func(string) (any, bool)) error) error

// cutBuckets answers a BucketRequest from a rangeSource: one read of the
// whole range cut every Size keys, or one read per bound.
func cutBuckets(ctx context.Context, req *BucketRequest, read rangeSource) ([]Bucket, error) {
	h := &hasher{req: req}
	if req.Bounds == nil {
		if req.Size < 1 {
			return nil, fmt.Errorf("cqrsync: verify: a bucket request needs Size or Bounds")
		}
		errFull := errors.New("limit reached")
		err := read(ctx, req, req.After, req.Until, func(pk any, get func(string) (any, bool)) error {
			if h.cur == nil || h.cur.Count == int64(req.Size) {
				if req.Limit > 0 && len(h.out) == req.Limit {
					return errFull
				}
				h.open()
			}
			return h.add(pk, get)
		})
		if errors.Is(err, errFull) {
			err = nil
		}
		return h.out, err
	}
	if his, ok := intBounds(req.Bounds); ok {
		// Integer keys: one read of the whole range, cut where each key
		// passes its bound (integers order alike in every database).
		i := 0
		h.open()
		err := read(ctx, req, req.After, req.Bounds[len(req.Bounds)-1], func(pk any, get func(string) (any, bool)) error {
			k, ok := intKey(pk)
			if !ok {
				return fmt.Errorf("cqrsync: verify: key %v is not an integer like the bounds", pk)
			}
			for i < len(his)-1 && k > his[i] {
				h.cur.Hi = req.Bounds[i]
				i++
				h.open()
			}
			return h.add(pk, get)
		})
		if err != nil {
			return nil, err
		}
		for len(h.out) < len(req.Bounds) {
			h.open()
		}
		for j := range h.out {
			h.out[j].Hi = req.Bounds[j]
		}
		return h.out, nil
	}
	prev := req.After
	for _, hi := range req.Bounds {
		h.open()
		if err := read(ctx, req, prev, hi, func(pk any, get func(string) (any, bool)) error { return h.add(pk, get) }); err != nil {
			return nil, err
		}
		h.cur.Hi, prev = hi, hi
	}
	return h.out, nil
}

// intBounds returns bounds as integers when every bound but an open last
// one is an integer, the open one as the largest int64.
func intBounds(bounds []any) ([]int64, bool) {
	out := make([]int64, len(bounds))
	for i, b := range bounds {
		if b == nil && i == len(bounds)-1 {
			out[i] = math.MaxInt64
			continue
		}
		k, ok := intKey(b)
		if !ok {
			return nil, false
		}
		out[i] = k
	}
	return out, len(bounds) > 0
}

// intKey returns an integer key's value.
func intKey(v any) (int64, bool) {
	switch k := v.(type) {
	case int64:
		return k, true
	case int:
		return int64(k), true
	case int32:
		return int64(k), true
	case json.Number:
		n, err := strconv.ParseInt(string(k), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// rangeFilter is the filter of the key range (after, until] on column pk.
func rangeFilter(pk string, after, until any) (string, error) {
	var f cqrsync.Object
	if after != nil {
		f = append(f, cqrsync.Member{Key: pk + "__gt", Value: after})
	}
	if until != nil {
		f = append(f, cqrsync.Member{Key: pk + "__lte", Value: until})
	}
	if f == nil {
		return "", nil
	}
	b, err := cqrsync.AppendJSON(nil, f)
	return string(b), err
}

// scanBatch is the page size of a side's reads for a request.
func scanBatch(req *BucketRequest) int {
	if req.Bounds != nil {
		return 10000
	}
	return min(max(req.Size, 1000), 10000)
}

// LocalMaster is the master end of a drift check over the master's
// database.
type LocalMaster struct {
	m  Master
	ex sqldialect.Executor
}

// NewLocalMaster returns the master end of a drift check over m's
// database ex.
func NewLocalMaster(m Master, ex sqldialect.Executor) *LocalMaster {
	return &LocalMaster{m: m, ex: ex}
}

var _ MasterSide = (*LocalMaster)(nil)

// Fields returns the fields of the model's instance_data, read from its
// first row (nil when the table is empty).
func (l *LocalMaster) Fields(ctx context.Context, cqrsID string) ([]string, error) {
	var fields []string
	errStop := errors.New("stop")
	err := l.m.Scan(ctx, l.ex, cqrsID, &cqrsync.ScanOpts{BatchSize: 1, InstanceData: true}, func(page []cqrsync.MasterRow) error {
		for _, m := range page[0].InstanceData {
			fields = append(fields, m.Key)
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return fields, nil
}

// Buckets returns the checksums of the instance_data (as a SYNC carries
// it) of the rows of a key range; rows the model's IsSyncInstance refuses
// are left out, as they are never sent.
func (l *LocalMaster) Buckets(ctx context.Context, req *BucketRequest) ([]Bucket, error) {
	mm, ok := l.m.Model(req.CQRSID)
	if !ok {
		return nil, l.m.Scan(ctx, l.ex, req.CQRSID, nil, func([]cqrsync.MasterRow) error { return nil })
	}
	return cutBuckets(ctx, req, func(ctx context.Context, req *BucketRequest, after, until any, fn func(any, func(string) (any, bool)) error) error {
		filter, err := rangeFilter(mm.PK, after, until)
		if err != nil {
			return err
		}
		return l.m.Scan(ctx, l.ex, req.CQRSID, &cqrsync.ScanOpts{Filter: filter, BatchSize: scanBatch(req), InstanceData: true}, func(page []cqrsync.MasterRow) error {
			for _, r := range page {
				if mm.IsSyncInstance != nil && !mm.IsSyncInstance(r.Columns) {
					continue
				}
				if err := fn(r.PK, r.InstanceData.Get); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// Resync enqueues a SYNC of each of keys to queue (Master.SyncQuery).
func (l *LocalMaster) Resync(ctx context.Context, cqrsID string, keys []any, queue string) (int64, error) {
	mm, ok := l.m.Model(cqrsID)
	if !ok {
		return l.m.SyncQuery(ctx, l.ex, cqrsID, &cqrsync.SyncOpts{Filter: "{}"}) // says what is wrong
	}
	filter, err := cqrsync.AppendJSON(nil, cqrsync.Object{{Key: mm.PK + "__in", Value: keys}})
	if err != nil {
		return 0, err
	}
	return l.m.SyncQuery(ctx, l.ex, cqrsID, &cqrsync.SyncOpts{Filter: string(filter), Queue: queue})
}

// LocalReplica is the replica end of a drift check over the replica's
// database.
type LocalReplica struct {
	r  *cqrsync.Replica
	ex sqldialect.Executor
}

// NewLocalReplica returns the replica end of a drift check over r's
// database ex.
func NewLocalReplica(r *cqrsync.Replica, ex sqldialect.Executor) *LocalReplica {
	return &LocalReplica{r: r, ex: ex}
}

var _ ReplicaSide = (*LocalReplica)(nil)

// columns returns the model's master field → replica column pairs the
// replica keeps.
func (l *LocalReplica) columns(ctx context.Context, cqrsID string) (*cqrsync.ReplicaModel, map[string]string, []string, error) {
	rm, ok := l.r.Model(cqrsID)
	if !ok {
		_, err := l.r.Columns(ctx, l.ex, cqrsID) // says what is wrong
		return nil, nil, nil, err
	}
	cols, err := l.r.Columns(ctx, l.ex, cqrsID)
	if err != nil {
		return nil, nil, nil, err
	}
	byField := map[string]string{}
	var fields []string
	if rm.Mapping == nil {
		for _, c := range cols {
			byField[c] = c
			fields = append(fields, c)
		}
		return rm, byField, fields, nil
	}
	for _, f := range slices.Sorted(maps.Keys(rm.Mapping)) {
		if c := rm.Mapping[f]; slices.Contains(cols, c) {
			byField[f] = c
			fields = append(fields, f)
		}
	}
	for _, f := range []string{cqrsync.RevisionField, cqrsync.UpdatedField} {
		if _, ok := byField[f]; !ok && slices.Contains(cols, f) {
			byField[f] = f
			fields = append(fields, f)
		}
	}
	return rm, byField, fields, nil
}

// Fields returns the master fields the replica keeps: through its Mapping,
// or every column of its table.
func (l *LocalReplica) Fields(ctx context.Context, cqrsID string) ([]string, error) {
	_, _, fields, err := l.columns(ctx, cqrsID)
	return fields, err
}

// Buckets returns the checksums of the stored rows of a key range,
// converted back to wire values under the master's field names.
func (l *LocalReplica) Buckets(ctx context.Context, req *BucketRequest) ([]Bucket, error) {
	rm, byField, _, err := l.columns(ctx, req.CQRSID)
	if err != nil {
		return nil, err
	}
	return cutBuckets(ctx, req, func(ctx context.Context, req *BucketRequest, after, until any, fn func(any, func(string) (any, bool)) error) error {
		filter, err := rangeFilter(rm.PK, after, until)
		if err != nil {
			return err
		}
		return l.r.ScanRows(ctx, l.ex, req.CQRSID, &cqrsync.ScanOpts{Filter: filter, BatchSize: scanBatch(req)}, func(rows []cqrsync.Object) error {
			for _, o := range rows {
				pk, _ := o.Get(rm.PK)
				get := func(field string) (any, bool) {
					col, ok := byField[field]
					if !ok {
						return nil, false
					}
					return o.Get(col)
				}
				if err := fn(pk, get); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// DeleteKeys deletes the replica rows with the given keys
// (Replica.DeleteKeys).
func (l *LocalReplica) DeleteKeys(ctx context.Context, cqrsID string, keys []any) (int64, error) {
	return l.r.DeleteKeys(ctx, l.ex, cqrsID, keys)
}

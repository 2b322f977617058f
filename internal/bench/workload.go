package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Mix is the share of creates, updates and deletes in the workload, in
// percent; they add up to 100.
type Mix struct {
	Create int `json:"create_pct"`
	Update int `json:"update_pct"`
	Delete int `json:"delete_pct"`
}

// ParseMix reads "create:update:delete" percentages, e.g. "60:30:10".
func ParseMix(s string) (Mix, error) {
	var m Mix
	var parts [3]int
	n := 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != ':' {
			continue
		}
		if n == 3 {
			n++
			break
		}
		v, err := strconv.Atoi(s[start:i])
		if err != nil || v < 0 {
			return m, fmt.Errorf("bench: mix %q: use create:update:delete percentages, e.g. 60:30:10", s)
		}
		parts[n] = v
		n++
		start = i + 1
	}
	if n != 3 || parts[0]+parts[1]+parts[2] != 100 {
		return m, fmt.Errorf("bench: mix %q: give three percentages (create:update:delete) that add up to 100", s)
	}
	if parts[0] == 0 {
		return m, fmt.Errorf("bench: mix %q: the workload needs creates (updates and deletes need rows)", s)
	}
	return Mix{Create: parts[0], Update: parts[1], Delete: parts[2]}, nil
}

// String describes the mix as "60% create, 30% update, 10% delete".
func (m Mix) String() string {
	return fmt.Sprintf("%d%% create, %d%% update, %d%% delete", m.Create, m.Update, m.Delete)
}

// writer is one master connection's workload state. It owns the keys
// w+1, w+1+W, w+1+2W, …, so writers never wait on each other's row locks.
type writer struct {
	w, n    int
	nextID  int64
	live    []int64 // keys of rows that exist
	rnd     *rand.Rand
	payload []byte
	probes  []probe // of the current transaction
	events  int     // of the current transaction

	creates, updates, deletes int64
}

func newWriter(w, n, rowBytes int, seed uint64) *writer {
	r := rand.New(rand.NewPCG(seed, uint64(w)))
	p := make([]byte, rowBytes)
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := range p {
		p[i] = letters[r.IntN(len(letters))]
	}
	return &writer{w: w, n: n, nextID: int64(w + 1), rnd: r, payload: p}
}

// text returns the row payload, its first bytes varied per change.
func (wr *writer) text(id int64) string {
	tag := strconv.AppendInt(nil, id, 36)
	tag = append(tag, '-')
	tag = strconv.AppendUint(tag, wr.rnd.Uint64()%1_000_000, 36)
	copy(wr.payload, tag)
	return string(wr.payload)
}

// tx makes k changes in one master transaction and commits it; wr.probes
// and wr.events then describe them. A failed transaction ends the run, so
// the writer's state need not be rolled back.
func (p *pipeline) tx(ctx context.Context, wr *writer, k int) error {
	tx, err := p.masterDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("bench: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	wr.probes = wr.probes[:0]
	wr.events = 0
	for range k {
		if err := p.change(ctx, tx, wr); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bench: commit: %w", err)
	}
	p.master.Committed()
	return nil
}

// change makes one change in tx: a create, an update or a delete, drawn
// from the mix. A create or update writes the row's commit_us (the clock
// now, just before capture and commit) and its probe (see probe.go).
func (p *pipeline) change(ctx context.Context, tx *sql.Tx, wr *writer) error {
	op := wr.rnd.IntN(100)
	m := p.opts.Mix
	wr.events++
	switch {
	case op >= m.Create && op < m.Create+m.Update && len(wr.live) > 0:
		id := wr.live[wr.rnd.IntN(len(wr.live))]
		pr := probe{seq: p.seq.Add(1), stampUS: time.Now().UnixMicro()}
		if p.opts.Insert {
			values := map[string]any{"commit_us": pr.stampUS, "probe": probeValue(pr.seq), "payload": wr.text(id)}
			if err := p.master.UpdateRow(ctx, tx, p.cqrsID, id, values); err != nil {
				return err
			}
		} else {
			if _, err := tx.ExecContext(ctx, p.updateSQL, pr.stampUS, probeValue(pr.seq), wr.text(id), id); err != nil {
				return fmt.Errorf("bench: update: %w", err)
			}
			if err := p.master.Update(ctx, tx, p.cqrsID, id); err != nil {
				return err
			}
		}
		wr.probes = append(wr.probes, pr)
		wr.updates++
		return nil
	case op >= m.Create+m.Update && len(wr.live) > 0:
		i := wr.rnd.IntN(len(wr.live))
		if err := p.master.Delete(ctx, tx, p.cqrsID, wr.live[i]); err != nil {
			return err
		}
		wr.live[i] = wr.live[len(wr.live)-1]
		wr.live = wr.live[:len(wr.live)-1]
		wr.deletes++
		return nil
	}
	id := wr.nextID
	pr := probe{seq: p.seq.Add(1), stampUS: time.Now().UnixMicro()}
	if p.opts.Insert {
		values := map[string]any{"id": id, "commit_us": pr.stampUS, "probe": probeValue(pr.seq), "payload": wr.text(id)}
		if err := p.master.Insert(ctx, tx, p.cqrsID, values); err != nil {
			return err
		}
	} else {
		if _, err := tx.ExecContext(ctx, p.insertSQL, id, pr.stampUS, probeValue(pr.seq), wr.text(id)); err != nil {
			return fmt.Errorf("bench: insert: %w", err)
		}
		if err := p.master.Create(ctx, tx, p.cqrsID, id); err != nil {
			return err
		}
	}
	wr.nextID += int64(wr.n)
	wr.live = append(wr.live, id)
	wr.probes = append(wr.probes, pr)
	wr.creates++
	return nil
}

// writeStats is what one phase's writers did.
type writeStats struct {
	changes     int64
	txs         int64
	firstCommit time.Time // the first commit's return
	lastCommit  time.Time
	start       time.Time // when the writers started
	// behind is the largest delay of a change behind its schedule (paced
	// phases only): when it grows, the master could not keep the rate.
	behind time.Duration
}

// write runs the phase's writers, k changes per transaction: n changes as
// fast as they go, or, with rate > 0, changes paced at rate per second for
// dur (open loop: a change due at t starts at t whether or not earlier ones
// finished, as long as a writer is free; a master that cannot keep the
// rate writes fewer changes, and the phase still ends after dur).
func (p *pipeline) write(ctx context.Context, k, n int, rate float64, dur time.Duration) (*writeStats, error) {
	var (
		budget  atomic.Int64
		tickets atomic.Int64
		mu      sync.Mutex
		st      = &writeStats{start: time.Now()}
	)
	total := int64(n)
	if rate > 0 {
		total = int64(rate * dur.Seconds())
	}
	budget.Store(total)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, wr := range p.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var behind time.Duration
			for {
				left := budget.Add(-int64(k))
				if left <= -int64(k) {
					break
				}
				size := k
				if left < 0 {
					size = k + int(left)
				}
				if rate > 0 {
					if time.Since(st.start) >= dur {
						break // behind schedule: the phase ends on time anyway
					}
					due := st.start.Add(time.Duration(float64(tickets.Add(int64(size))-int64(size)) / rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					} else {
						behind = max(behind, -d)
					}
				}
				if err := p.tx(ctx, wr, size); err != nil {
					cancel(err)
					return
				}
				now := time.Now()
				p.rec.commit(wr.probes, wr.events, now.UnixNano())
				p.committed.Add(int64(wr.events))
				mu.Lock()
				if st.firstCommit.IsZero() {
					st.firstCommit = now
				}
				st.lastCommit = now
				st.changes += int64(wr.events)
				st.txs++
				mu.Unlock()
			}
			mu.Lock()
			st.behind = max(st.behind, behind)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return st, err
	}
	return st, nil
}

// counts sums the writers' operations.
func (p *pipeline) counts() (creates, updates, deletes int64) {
	for _, wr := range p.writers {
		creates += wr.creates
		updates += wr.updates
		deletes += wr.deletes
	}
	return
}

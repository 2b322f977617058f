package cqrsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// DefaultWaitPoll is ReplicaConfig.WaitPoll's default.
const DefaultWaitPoll = time.Second

// ErrNotWaitable is wrapped by [Replica.WaitFor]'s error for a model whose
// replica keeps no revision to compare a token with (NoDBOperations).
var ErrNotWaitable = errors.New("cqrsync: cannot wait for this model")

// waiters wakes the WaitFor calls of a Replica when a consumer in this
// process has committed a batch holding their key.
type waiters struct {
	count     atomic.Int64 // waiting calls, so a batch with none costs one load
	consumers atomic.Int64 // consumers of the replica running in this process

	mu    sync.Mutex
	byKey map[string]map[chan struct{}]struct{}
}

// waitKey names a key for waking its waiters: the model and the key's text
// as it travels on the wire.
func waitKey(cqrsID string, pk any) string { return cqrsID + "\x00" + keyString(pk) }

func (w *waiters) add(key string) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.byKey == nil {
		w.byKey = map[string]map[chan struct{}]struct{}{}
	}
	set := w.byKey[key]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		w.byKey[key] = set
	}
	set[ch] = struct{}{}
	w.mu.Unlock()
	w.count.Add(1)
	return ch
}

func (w *waiters) remove(key string, ch chan struct{}) {
	w.mu.Lock()
	if set := w.byKey[key]; set != nil {
		delete(set, ch)
		if len(set) == 0 {
			delete(w.byKey, key)
		}
	}
	w.mu.Unlock()
	w.count.Add(-1)
}

// wake wakes the waiters of the keys of ps, which a transaction has just
// committed (applied or dropped: a dropped event means the key is already
// as new).
func (w *waiters) wake(ps []*Payload) {
	if w.count.Load() == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		for ch := range w.byKey[waitKey(p.CQRSID, p.InstancePK)] {
			select {
			case ch <- struct{}{}:
			default: // already woken
			}
		}
	}
}

// Applied tells the replica's waiters (see [Replica.WaitFor]) that a
// transaction applying ps has committed. A [Consumer] calls it after each
// batch; call it after your own transactions that run [Replica.Apply] or
// ApplyBatch, or the waiters notice those only at their next poll.
func (r *Replica) Applied(ps []*Payload) { r.waiters.wake(ps) }

// WaitFor returns nil once this replica has applied the change tok names:
// when the key's stored cqrs_revision, or its tombstone's (the change was,
// or was followed by, a DELETE), is at least tok.Revision. Otherwise it
// returns ctx's error when ctx ends: give it a deadline.
//
// It reads the key once, then again whenever a [Consumer] of this Replica
// running in the process commits a batch with an event of the key: no
// polling while it waits for such a consumer. Where none runs in the
// process (events applied by another process, or by calls of Apply), it
// re-reads the key every ReplicaConfig.WaitPoll, and every 10 × WaitPoll
// beside a running consumer, for events that other consumer processes on
// the same queue apply.
//
// Field mapping does not matter: the key is the replica's PK column. A
// NoDBOperations model keeps no revision, so waiting for one is an error
// wrapping ErrNotWaitable. A token whose key cannot be a value of the PK
// column is an error wrapping ErrInvalidValue; an unknown model's wraps
// ErrUnknownModel.
func (r *Replica) WaitFor(ctx context.Context, tok Token) error {
	read, err := r.keyReader(ctx, tok)
	if err != nil {
		return err
	}
	ch := r.waiters.add(waitKey(tok.CQRSID, tok.PK))
	defer r.waiters.remove(waitKey(tok.CQRSID, tok.PK), ch)
	var timer *time.Timer
	for {
		v, err := read(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err
		case v.Revision >= tok.Revision || v.TombstoneRevision >= tok.Revision:
			return nil
		}
		poll := r.cfg.WaitPoll
		if r.waiters.consumers.Load() > 0 {
			poll *= 10
		}
		if timer == nil {
			timer = time.NewTimer(poll)
			defer timer.Stop()
		} else {
			timer.Reset(poll)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-timer.C:
		}
	}
}

// keyReader checks that tok can be waited for here and returns the read
// of its key's version.
func (r *Replica) keyReader(ctx context.Context, tok Token) (func(context.Context) (sqldialect.KeyVersion, error), error) {
	rm, ok := r.Model(tok.CQRSID)
	if !ok {
		return nil, fmt.Errorf("%w %q: this replica has not registered it, so it cannot wait for its token", ErrUnknownModel, tok.CQRSID)
	}
	if rm.NoDBOperations {
		return nil, fmt.Errorf("%w %q: it has NoDBOperations, so the replica keeps no revision to compare the token with; wait on the state your OnSave and OnDelete handlers write instead", ErrNotWaitable, tok.CQRSID)
	}
	ex := r.db.Pool()
	ti, err := r.tables.get(ctx, ex, rm.CQRSID, rm.Table, rm.Types)
	if err != nil {
		return nil, err
	}
	pk, err := ColumnValue(ti.types[rm.PK], tok.PK)
	if err != nil {
		return nil, &ModelError{CQRSID: tok.CQRSID, PK: tok.PK, Err: fmt.Errorf("the token's key: %w", err)}
	}
	params := &sqldialect.KeyVersionParams{Table: rm.Table, PKColumn: rm.PK, PK: pk, CQRSID: rm.CQRSID, Key: keyString(pk)}
	return func(ctx context.Context) (sqldialect.KeyVersion, error) {
		return r.dialect.KeyVersion(ctx, ex, params)
	}, nil
}

// WaitAll waits for every token in turn (see [Replica.WaitFor]) and
// returns the first error.
func (r *Replica) WaitAll(ctx context.Context, toks ...Token) error {
	for _, tok := range toks {
		if err := r.WaitFor(ctx, tok); err != nil {
			return fmt.Errorf("wait for %s: %w", tok, err)
		}
	}
	return nil
}

// WaitHandlerOpts configures [Replica.WaitHandler].
type WaitHandlerOpts struct {
	// DefaultTimeout is the wait of a request without a timeout parameter.
	// Default 5s.
	DefaultTimeout time.Duration
	// MaxTimeout caps the timeout a request may ask for. Default 60s.
	MaxTimeout time.Duration
}

// WaitHandler returns an http.Handler for read-your-writes over HTTP:
//
//	GET ?token=account.3.42[&token=...][&timeout=2s]
//
// waits until every token is applied on this replica (see
// [Replica.WaitFor]) and answers 200 when they are, 408 when the timeout
// (a Go duration, default opts.DefaultTimeout, at most opts.MaxTimeout) ran
// out first, 400 for a missing or malformed token or timeout, or a token
// this replica cannot wait for (an unknown or NoDBOperations model, a key
// of the wrong type), and 500 when the replica database fails. Methods
// other than GET and HEAD get 405. The body is one line of text saying
// which.
func (r *Replica) WaitHandler(opts *WaitHandlerOpts) http.Handler {
	o := WaitHandlerOpts{DefaultTimeout: 5 * time.Second, MaxTimeout: time.Minute}
	if opts != nil {
		if opts.DefaultTimeout > 0 {
			o.DefaultTimeout = opts.DefaultTimeout
		}
		if opts.MaxTimeout > 0 {
			o.MaxTimeout = opts.MaxTimeout
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET ?token=...&timeout=...", http.StatusMethodNotAllowed)
			return
		}
		q := req.URL.Query()
		texts := q["token"]
		if len(texts) == 0 {
			http.Error(w, "missing token parameter: GET ?token=<cqrs_id>.<revision>.<key>&timeout=5s", http.StatusBadRequest)
			return
		}
		toks := make([]Token, len(texts))
		for i, s := range texts {
			tok, err := ParseToken(s)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			toks[i] = tok
		}
		timeout := o.DefaultTimeout
		if s := q.Get("timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				http.Error(w, fmt.Sprintf("timeout %q: give a positive Go duration such as 2s or 500ms", s), http.StatusBadRequest)
				return
			}
			timeout = min(d, o.MaxTimeout)
		}
		ctx, cancel := context.WithTimeout(req.Context(), timeout)
		defer cancel()
		err := r.WaitAll(ctx, toks...)
		switch {
		case err == nil:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "applied")
		case errors.Is(err, context.DeadlineExceeded) && req.Context().Err() == nil:
			http.Error(w, fmt.Sprintf("not applied within %v: %v", timeout, err), http.StatusRequestTimeout)
		case errors.Is(err, ErrUnknownModel) || errors.Is(err, ErrNotWaitable) || errors.Is(err, ErrInvalidValue):
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

// Package observe holds what the metrics adapters (hook/promhook,
// hook/otelhook) share: the figures read when scraped (outbox backlog,
// broker queue depths) and the names of apply outcomes.
package observe

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// Sources are the figures read on demand.
type Sources struct {
	// Outbox reads the outbox backlog; nil: none.
	Outbox func(context.Context) (*sqldialect.OutboxStats, error)
	// Broker reads queue depths of Queues; nil: none.
	Broker transport.Inspector
	// Queues are the queues whose depth is read.
	Queues []string
	// Timeout bounds one read of all of them. Default 5 s.
	Timeout time.Duration
}

// Reading is one read of the sources.
type Reading struct {
	// HasOutbox: the backlog was read; Rows and OldestAge hold it.
	HasOutbox bool
	Rows      int64
	OldestAge time.Duration
	// Depths are the queue depths read, by queue; a queue that does not
	// exist yet (or could not be read) is absent.
	Depths map[string]int
	// Errs are the reads that failed, by source ("outbox", "broker").
	Errs map[string]error
}

// Read reads every source, bounded by Timeout.
func (s *Sources) Read(ctx context.Context) Reading {
	r := Reading{Errs: map[string]error{}}
	if s.Outbox == nil && s.Broker == nil {
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, cmpDuration(s.Timeout, 5*time.Second))
	defer cancel()
	if s.Outbox != nil {
		st, err := s.Outbox(ctx)
		if err != nil {
			r.Errs["outbox"] = err
		} else {
			r.HasOutbox, r.Rows = true, st.Rows
			if st.Rows > 0 && !st.Oldest.IsZero() {
				r.OldestAge = max(time.Since(st.Oldest), 0)
			}
		}
	}
	if s.Broker != nil {
		r.Depths = make(map[string]int, len(s.Queues))
		for _, q := range s.Queues {
			n, err := s.Broker.QueueDepth(ctx, q)
			switch {
			case errors.Is(err, transport.ErrQueueNotFound):
			case err != nil:
				r.Errs["broker"] = err
			default:
				r.Depths[q] = n
			}
		}
	}
	return r
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Outcome names, as the metrics label them.
const (
	Applied    = "applied"
	Stale      = "stale"
	Duplicate  = "duplicate"
	Tombstoned = "tombstoned"
	Ignored    = "ignored"
)

// Outcome is a count of one outcome of a batch.
type Outcome struct {
	Name string
	N    int
}

// Outcomes returns the counts of a's outcomes, zero ones included (callers
// skip them), without allocating.
func Outcomes(a *hook.Apply) [5]Outcome {
	return [5]Outcome{{Applied, a.Applied}, {Stale, a.Stale}, {Duplicate, a.Duplicate}, {Tombstoned, a.Tombstoned}, {Ignored, a.Ignored}}
}

// LagBuckets are the end-to-end lag histogram's bucket bounds, in seconds:
// 1 ms to 10 min.
var LagBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// DurationBuckets are the bounds, in seconds, of the publish-confirm and
// apply duration histograms: 0.5 ms to 10 s.
var DurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// SizeBuckets are the bounds of the apply batch size histogram.
var SizeBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}

// Key names a series: a model and one label value (a signal, an outcome;
// "" when the series has only the model).
type Key struct{ CQRSID, Label string }

// Cache memoizes the per-series handles of a metric (a Prometheus counter,
// an OpenTelemetry attribute set) so that recording one costs a map lookup,
// without hashing label values or allocating. It is safe for concurrent
// use; the zero value is ready.
type Cache[V any] struct {
	mu sync.RWMutex
	m  map[Key]V
}

// Get returns the handle of k, made by mk on first use.
func (c *Cache[V]) Get(k Key, mk func(Key) V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return v
	}
	if c.m == nil {
		c.m = map[Key]V{}
	}
	v = mk(k)
	c.m[k] = v
	return v
}

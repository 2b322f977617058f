// Package backoff paces retries: waits that double from a minimum to a
// maximum, with jitter so that many clients do not retry in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the state of one retry loop. The zero value needs Min and Max.
type Backoff struct {
	// Min is the first wait, Max the longest.
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns how long to wait before the next attempt: the previous wait
// doubled (Min the first time, at most Max), then spread by jitter into
// [d/2, d].
func (b *Backoff) Next() time.Duration {
	b.cur = min(max(2*b.cur, b.Min), b.Max)
	return b.cur/2 + rand.N(b.cur/2+1)
}

// Failing reports whether a wait is under way (Next was called since the
// last Reset).
func (b *Backoff) Failing() bool { return b.cur > 0 }

// Reset starts again from Min after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d or until ctx ends, and reports whether it waited the whole d.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Package startstop runs a background service with the Start/Started/Stop
// lifecycle that cqrsync's relay and consumer share.
package startstop

import (
	"context"
	"errors"
	"sync"
)

// ErrStop is the cancellation cause of a service's context after Stop, so
// the service can tell an orderly stop from its parent context ending.
var ErrStop = errors.New("cqrsync: service stopped")

// ErrAlreadyStarted is returned by Start on a running service.
var ErrAlreadyStarted = errors.New("cqrsync: service already started")

// Runner runs one function in a goroutine, at most once at a time.
// The zero Runner is ready to use.
type Runner struct {
	mu      sync.Mutex
	cancel  context.CancelCauseFunc
	done    chan struct{}
	started chan struct{}
	err     error
}

// Start runs run in a new goroutine with a context derived from ctx.
// run calls started() once it is ready (for example subscribed), which
// closes the channel returned by Started.
func (r *Runner) Start(ctx context.Context, run func(ctx context.Context, started func()) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		select {
		case <-r.done:
		default:
			return ErrAlreadyStarted
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	r.cancel = cancel
	r.done = make(chan struct{})
	r.started = make(chan struct{})
	r.err = nil
	done, startedCh := r.done, r.started
	var once sync.Once
	markStarted := func() { once.Do(func() { close(startedCh) }) }
	go func() {
		err := run(ctx, markStarted)
		markStarted()
		cancel(ErrStop)
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(done)
	}()
	return nil
}

// Started returns a channel closed once the service is ready (or has
// ended). Nil before Start.
func (r *Runner) Started() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}

// Done returns a channel closed when the service has ended. Nil before Start.
func (r *Runner) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// Err returns the error the service ended with, once Done is closed.
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Stop asks the service to stop and waits until it has. It returns the
// error the service ended with (nil for an orderly stop).
func (r *Runner) Stop() error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel(ErrStop)
	<-done
	return r.Err()
}

// Stopping reports whether ctx ended because of Stop (rather than the
// parent context).
func Stopping(ctx context.Context) bool { return errors.Is(context.Cause(ctx), ErrStop) }

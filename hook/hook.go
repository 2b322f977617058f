// Package hook lets metrics and tracing observe cqrsync without cqrsync
// depending on them: [Hooks] is called at every step of an event's way from
// the master's transaction to the replica's table, and a [Propagator]
// carries a trace context (or anything else a caller keeps in its context)
// from the capturing transaction to the replica's handler, through the
// outbox's headers column and the transport's message headers.
//
// The package imports only the standard library. Its shapes follow
// OpenTelemetry's, so an adapter is a few lines: [Propagator] has
// TextMapPropagator's methods and [Carrier] is TextMapCarrier's method set.
// A Hooks value that also implements [Tracer] traces each capture, publish
// and apply as a span. hook/promhook (Prometheus) and hook/otelhook
// (OpenTelemetry metrics and traces) are ready-made adapters; [Join] runs
// several side by side.
//
// Hooks cost nothing when unset: every call site checks for a nil Hooks
// first, and reads no clock and builds no event without one. A Hooks value
// is called from many goroutines at once (capturing transactions, the
// relay, the consumer's workers): it must be safe for concurrent use, and
// quick, since it runs on the caller's path.
package hook

import (
	"context"
	"time"
)

// Hooks observes cqrsync. Embed [Nop] to implement only some of the
// methods. The context passed is the caller's: the capturing call's, the
// relay's, or the consumer's.
type Hooks interface {
	// OnCapture is called after each capture call of a Master (Create,
	// Insert, Update, UpdateRow, UpdateWith, Delete, Sync).
	OnCapture(ctx context.Context, e Capture)
	// OnClaim is called after each outbox claim of a relay, including the
	// claims that found nothing.
	OnClaim(ctx context.Context, e Claim)
	// OnPublish is called after a relay published a claimed batch.
	OnPublish(ctx context.Context, e Publish)
	// OnApply is called after a consumer applied a batch, once per model in
	// it.
	OnApply(ctx context.Context, e Apply)
	// OnRetry is called when a consumer schedules an event for another try.
	OnRetry(ctx context.Context, e Retry)
	// OnDeadLetter is called when a consumer moved an event to the
	// dead-letter queue.
	OnDeadLetter(ctx context.Context, e DeadLetter)
	// OnLag is called for every event a consumer applied, with the time from
	// its capture to its commit on the replica.
	OnLag(ctx context.Context, e Lag)
}

// Nop implements every method of [Hooks] by doing nothing; embed it in a
// hooks type to implement only the methods it needs.
type Nop struct{}

// OnCapture does nothing.
func (Nop) OnCapture(context.Context, Capture) {}

// OnClaim does nothing.
func (Nop) OnClaim(context.Context, Claim) {}

// OnPublish does nothing.
func (Nop) OnPublish(context.Context, Publish) {}

// OnApply does nothing.
func (Nop) OnApply(context.Context, Apply) {}

// OnRetry does nothing.
func (Nop) OnRetry(context.Context, Retry) {}

// OnDeadLetter does nothing.
func (Nop) OnDeadLetter(context.Context, DeadLetter) {}

// OnLag does nothing.
func (Nop) OnLag(context.Context, Lag) {}

// Capture describes one capture call.
type Capture struct {
	// CQRSID is the model captured.
	CQRSID string
	// Signal is the event type: "SAVE", "DELETE" or "SYNC".
	Signal string
	// Rows is the number of rows the call named.
	Rows int
	// Duration is how long the call took, including its SQL.
	Duration time.Duration
	// Err is the call's error; nil on success.
	Err error
}

// Claim describes one outbox claim of a relay.
type Claim struct {
	// Rows is the number of events claimed; 0 when the outbox was empty.
	Rows int
	// Duration is how long the claim query took.
	Duration time.Duration
	// Err is the claim's error; nil on success.
	Err error
}

// Publish describes the publish of one claimed batch.
type Publish struct {
	// Events is the number of events sent.
	Events int
	// Failed is how many of them the broker did not take (they stay in the
	// outbox and are sent again).
	Failed int
	// Duration is how long the publish took.
	Duration time.Duration
	// Err is the publish's error; nil when every event was taken.
	Err error
}

// Apply describes the events of one model in one batch a consumer applied
// in one transaction. The outcome counts add up to Size.
type Apply struct {
	// CQRSID is the model.
	CQRSID string
	// Size is the number of events of the model in the batch.
	Size int
	// Applied counts the events that changed the replica (created, updated,
	// synced, deleted, or handled by a handler).
	Applied int
	// Stale counts events older than the stored row, dropped.
	Stale int
	// Duplicate counts events with the stored revision, dropped.
	Duplicate int
	// Tombstoned counts events older than the key's delete, dropped.
	Tombstoned int
	// Ignored counts events that had nothing to do: deletes of absent rows,
	// broadcast SYNCs for models that take direct ones only.
	Ignored int
	// Duration is how long the batch's transaction took, commit included.
	Duration time.Duration
	// Err is the batch's error; nil when it committed. A failed batch is
	// applied again event by event, and reported again.
	Err error
}

// Retry describes an event scheduled for another try.
type Retry struct {
	// CQRSID is the event's model.
	CQRSID string
	// Attempt is the try coming next: 1 for the first retry.
	Attempt int
	// Delay is how long the event waits before it.
	Delay time.Duration
	// Reason is why the last try failed.
	Reason error
}

// DeadLetter describes an event moved to the dead-letter queue.
type DeadLetter struct {
	// CQRSID is the event's model ("" when the body could not be read).
	CQRSID string
	// Reason is why the event cannot be applied.
	Reason error
}

// Lag describes one applied event's delay.
type Lag struct {
	// CQRSID is the event's model.
	CQRSID string
	// Lag is the time from the event's capture on the master (its
	// cqrs_updated) to the commit of its batch on the replica; a clock skew
	// between the two machines adds to it, and may make it negative.
	Lag time.Duration
}

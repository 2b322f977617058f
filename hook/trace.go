package hook

import "context"

// Tracer is implemented by a [Hooks] value that traces: where a Hooks value
// given to a master, relay or consumer also implements Tracer, each step
// begins a span there and ends it when the step is done. A span's context
// travels with the event as headers (a Carrier), so the relay's publish and
// the replica's apply continue the trace of the capture, across processes
// and the broker. The methods are called from many goroutines at once and
// must be quick.
//
// Without a Tracer nothing is called and no header is added.
type Tracer interface {
	// TraceCapture begins the span of a capture call (Create, Insert,
	// Update, UpdateRow, UpdateWith, Delete, Sync) of the model cqrsID with
	// the given signal. The context it returns replaces ctx for the call: it
	// is what the master's Propagator injects into the events' headers, and
	// what OnCapture then receives. end is called once when the call
	// returns, with its error.
	TraceCapture(ctx context.Context, cqrsID, signal string) (_ context.Context, end func(err error))
	// TracePublish begins the span of one event's publish by a relay. headers
	// are the event's, as stored in the outbox (what the master's Propagator
	// wrote): the span reads its parent from them, and may write its own
	// context into them; they go out as the message's headers. end is
	// called once the broker took the event (nil) or refused it.
	TracePublish(ctx context.Context, cqrsID string, headers Carrier) (end func(err error))
	// TraceApply begins the span of one event's apply by a consumer, its
	// parent read from the message's headers. end is called once the
	// event's batch committed (err nil; outcome is what became of the
	// event: "created", "updated", "synced", "deleted", "handled",
	// "duplicate", "stale", "tombstoned", "noop" or "ignored") or failed
	// (outcome ""; a failed batch is applied again event by event).
	TraceApply(ctx context.Context, cqrsID string, headers Carrier) (end func(outcome string, err error))
}

// Join returns one Hooks that calls each of hs in turn (nil ones are left
// out): metrics and tracing adapters side by side. It implements [Tracer]
// when one of hs does, chaining their contexts. Join of none is nil, and of
// one is that one.
func Join(hs ...Hooks) Hooks {
	var j joined
	for _, h := range hs {
		switch h := h.(type) {
		case nil:
		case joined:
			j = append(j, h...)
		case joinedTracer:
			j = append(j, h.joined...)
		case joinedOneTracer:
			j = append(j, h.joined...)
		default:
			j = append(j, h)
		}
	}
	switch len(j) {
	case 0:
		return nil
	case 1:
		return j[0]
	}
	var tracers []Tracer
	for _, h := range j {
		if t, ok := h.(Tracer); ok {
			tracers = append(tracers, t)
		}
	}
	switch len(tracers) {
	case 0:
		return j
	case 1:
		return joinedOneTracer{j, tracers[0]}
	}
	return joinedTracer{j}
}

// joinedOneTracer is a joined with one Tracer among its members, to which
// it forwards the spans as they are (no chaining to allocate).
type joinedOneTracer struct {
	joined
	Tracer
}

type joined []Hooks

// each calls on for every member of j, in order.
func each[E any](ctx context.Context, j joined, e E, on func(Hooks, context.Context, E)) {
	for _, h := range j {
		on(h, ctx, e)
	}
}

func (j joined) OnCapture(ctx context.Context, e Capture)       { each(ctx, j, e, Hooks.OnCapture) }
func (j joined) OnClaim(ctx context.Context, e Claim)           { each(ctx, j, e, Hooks.OnClaim) }
func (j joined) OnPublish(ctx context.Context, e Publish)       { each(ctx, j, e, Hooks.OnPublish) }
func (j joined) OnApply(ctx context.Context, e Apply)           { each(ctx, j, e, Hooks.OnApply) }
func (j joined) OnRetry(ctx context.Context, e Retry)           { each(ctx, j, e, Hooks.OnRetry) }
func (j joined) OnDeadLetter(ctx context.Context, e DeadLetter) { each(ctx, j, e, Hooks.OnDeadLetter) }
func (j joined) OnLag(ctx context.Context, e Lag)               { each(ctx, j, e, Hooks.OnLag) }

// joinedTracer is a joined whose members include a Tracer.
type joinedTracer struct{ joined }

func (j joinedTracer) TraceCapture(ctx context.Context, cqrsID, signal string) (context.Context, func(error)) {
	var ends []func(error)
	for _, h := range j.joined {
		if t, ok := h.(Tracer); ok {
			var end func(error)
			ctx, end = t.TraceCapture(ctx, cqrsID, signal)
			ends = append(ends, end)
		}
	}
	return ctx, func(err error) {
		for i := len(ends) - 1; i >= 0; i-- {
			ends[i](err)
		}
	}
}

func (j joinedTracer) TracePublish(ctx context.Context, cqrsID string, headers Carrier) func(error) {
	var ends []func(error)
	for _, h := range j.joined {
		if t, ok := h.(Tracer); ok {
			ends = append(ends, t.TracePublish(ctx, cqrsID, headers))
		}
	}
	return func(err error) {
		for _, end := range ends {
			end(err)
		}
	}
}

func (j joinedTracer) TraceApply(ctx context.Context, cqrsID string, headers Carrier) func(string, error) {
	var ends []func(string, error)
	for _, h := range j.joined {
		if t, ok := h.(Tracer); ok {
			ends = append(ends, t.TraceApply(ctx, cqrsID, headers))
		}
	}
	return func(outcome string, err error) {
		for _, end := range ends {
			end(outcome, err)
		}
	}
}

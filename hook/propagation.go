package hook

import (
	"context"
	"slices"
)

// Carrier holds key-value pairs across a process boundary: the outbox
// row's headers column, then the transport message's headers. Its method
// set is OpenTelemetry's propagation.TextMapCarrier.
type Carrier interface {
	// Get returns the value of key, "" when absent.
	Get(key string) string
	// Set stores value under key.
	Set(key, value string)
	// Keys lists the keys stored.
	Keys() []string
}

// Propagator moves values from a context into a carrier and back. Its
// methods are OpenTelemetry's propagation.TextMapPropagator's, over
// [Carrier] instead of TextMapCarrier: hook/otelhook's Propagator adapts
// one.
type Propagator interface {
	// Inject writes the values of ctx that travel into carrier.
	Inject(ctx context.Context, carrier Carrier)
	// Extract returns a copy of ctx with the values read from carrier.
	Extract(ctx context.Context, carrier Carrier) context.Context
	// Fields lists the keys Inject writes.
	Fields() []string
}

// MapCarrier is a [Carrier] over a map. A nil MapCarrier reads as empty;
// Set needs a map.
type MapCarrier map[string]string

// Get returns the value of key.
func (c MapCarrier) Get(key string) string { return c[key] }

// Set stores value under key.
func (c MapCarrier) Set(key, value string) { c[key] = value }

// Keys lists the keys, sorted.
func (c MapCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// HeaderCorrelationID is the header that carries an event's correlation ID
// beside its body (where django-cqrs has it as correlation_id).
const HeaderCorrelationID = "correlation_id"

type headersKey struct{}

// WithHeaders returns a copy of ctx that carries the headers an event
// arrived with; a replica's handler reads them with [Headers].
func WithHeaders(ctx context.Context, headers map[string]string) context.Context {
	return context.WithValue(ctx, headersKey{}, headers)
}

// Headers returns the headers of the event whose handler received ctx: those
// stored with it in the master's outbox (the correlation ID, what the
// master's Propagator injected) and the transport's own. Nil when none. The
// map must not be changed.
func Headers(ctx context.Context) map[string]string {
	h, _ := ctx.Value(headersKey{}).(map[string]string)
	return h
}

// Package otelhook traces cqrsync and records its metrics with
// OpenTelemetry. A [*Hooks] is a [hook.Hooks] and a [hook.Tracer]: give it
// to a master, relay and consumer (MasterConfig.Hooks, outbox.Config.Hooks,
// ConsumerConfig.Hooks), and give [Hooks.Propagator] to the master
// (MasterConfig.Propagator) so that the capture's span context is stored
// in the outbox with each event.
//
// Each event then makes one trace across processes and the broker: a
// "cqrsync capture" span around the master's capture call, a child
// "cqrsync publish" span when a relay publishes it (its context travels in
// the message's headers, beside the body, which is not changed; django-cqrs
// ignores headers it does not know), and a child "cqrsync apply" span when a
// replica's consumer applies it.
//
// The metrics are those of hook/promhook under OpenTelemetry names (see
// docs/observability.md): counters, histograms and, read when the meter
// provider collects, the outbox backlog and the broker's queue depths.
//
// It is opt-in: cqrsync itself does not link OpenTelemetry.
package otelhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/observe"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/cqrsync/cqrsync"

// Config configures [New]. The zero value uses the global providers.
type Config struct {
	// TracerProvider makes the spans. Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider records the metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TextMapPropagator writes span contexts into events' headers and reads
	// them back. Default the W3C trace context (traceparent, tracestate).
	TextMapPropagator propagation.TextMapPropagator
	// Outbox, when set, is read each time the meter provider collects, for
	// the outbox backlog: outbox.StatsFunc(db), or a relay's Stats method.
	Outbox func(context.Context) (*sqldialect.OutboxStats, error)
	// Broker, when set, is asked for the depth of Queues at each collection.
	Broker transport.Inspector
	// Queues are the queues whose depth is recorded.
	Queues []string
	// ReadTimeout bounds the reads of one collection. Default 5 s.
	ReadTimeout time.Duration
}

// Hooks traces cqrsync and records its metrics. It is safe for concurrent
// use.
type Hooks struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	reg    metric.Registration

	captured, captureErrors, claimErrors, published, publishFailures metric.Int64Counter
	events, retries, deadLetters, applyErrors                        metric.Int64Counter
	confirm, applyDuration, lag                                      metric.Float64Histogram
	batchSize                                                        metric.Int64Histogram

	byModel, bySignal, byOutcome observe.Cache[opts] // attribute sets
}

var (
	_ hook.Hooks  = (*Hooks)(nil)
	_ hook.Tracer = (*Hooks)(nil)
)

// New returns the hooks; Close releases the collection callback. cfg may be
// nil.
func New(cfg *Config) (*Hooks, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	tp, mp, prop := cfg.TracerProvider, cfg.MeterProvider, cfg.TextMapPropagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	h := &Hooks{tracer: tp.Tracer(ScopeName), prop: prop}
	m := mp.Meter(ScopeName)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string, buckets []float64) metric.Float64Histogram {
		c, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return c
	}
	h.captured = counter("cqrsync.capture.events", "{event}", "Rows captured by successful capture calls of the master.")
	h.captureErrors = counter("cqrsync.capture.errors", "{call}", "Capture calls of the master that failed.")
	h.claimErrors = counter("cqrsync.relay.claim.errors", "{claim}", "Outbox claims of the relay that failed.")
	h.published = counter("cqrsync.relay.published", "{event}", "Events the relay published and the broker confirmed.")
	h.publishFailures = counter("cqrsync.relay.publish.failures", "{event}", "Events the broker did not take; they stay in the outbox and are sent again.")
	h.confirm = seconds("cqrsync.relay.confirm.duration", "Time from a batch's publish to the broker's confirmation.", observe.DurationBuckets)
	h.events = counter("cqrsync.consumer.events", "{event}", "Events of committed batches by outcome: applied, or dropped as stale, duplicate, tombstoned or ignored.")
	h.retries = counter("cqrsync.consumer.retries", "{event}", "Events the consumer scheduled for another try.")
	h.deadLetters = counter("cqrsync.consumer.dead_letters", "{event}", "Events the consumer moved to the dead-letter queue.")
	h.applyErrors = counter("cqrsync.apply.errors", "{batch}", "Batches whose transaction failed (their events are applied again one by one).")
	h.applyDuration = seconds("cqrsync.apply.duration", "Duration of a batch's transaction, commit included.", observe.DurationBuckets)
	h.lag = seconds("cqrsync.lag", "End-to-end lag: from the event's capture on the master to its batch's commit on the replica.", observe.LagBuckets)
	var err error
	h.batchSize, err = m.Int64Histogram("cqrsync.apply.batch.size", metric.WithUnit("{event}"),
		metric.WithDescription("Events of one model in one batch applied in one transaction."), metric.WithExplicitBucketBoundaries(observe.SizeBuckets...))
	errs = append(errs, err)

	src := observe.Sources{Outbox: cfg.Outbox, Broker: cfg.Broker, Queues: cfg.Queues, Timeout: cfg.ReadTimeout}
	if src.Outbox != nil || src.Broker != nil {
		backlog, err1 := m.Int64ObservableGauge("cqrsync.outbox.backlog", metric.WithUnit("{event}"), metric.WithDescription("Events waiting in the outbox."))
		oldest, err2 := m.Float64ObservableGauge("cqrsync.outbox.oldest_age", metric.WithUnit("s"), metric.WithDescription("Age of the oldest event waiting in the outbox (0 when empty)."))
		depth, err3 := m.Int64ObservableGauge("cqrsync.broker.queue.depth", metric.WithUnit("{message}"), metric.WithDescription("Messages ready in the broker queue."))
		errs = append(errs, err1, err2, err3)
		h.reg, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
			r := src.Read(ctx)
			if r.HasOutbox {
				o.ObserveInt64(backlog, r.Rows)
				o.ObserveFloat64(oldest, r.OldestAge.Seconds())
			}
			for q, n := range r.Depths {
				o.ObserveInt64(depth, int64(n), metric.WithAttributes(attribute.String("queue", q)))
			}
			return nil
		}, backlog, oldest, depth)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("otelhook: create the instruments: %w", err)
	}
	return h, nil
}

// Close unregisters the collection callback of the outbox backlog and
// queue depths.
func (h *Hooks) Close() error {
	if h.reg == nil {
		return nil
	}
	return h.reg.Unregister()
}

// Propagator returns the [hook.Propagator] to give a master
// (MasterConfig.Propagator), so the capture span's context is stored with
// each event, and a replica (ReplicaConfig.Propagator), so its handlers'
// contexts carry the apply's parent.
func (h *Hooks) Propagator() hook.Propagator { return Propagator(h.prop) }

// Propagator adapts an OpenTelemetry TextMapPropagator (such as
// otel.GetTextMapPropagator()) to a [hook.Propagator].
func Propagator(p propagation.TextMapPropagator) hook.Propagator { return propagator{p} }

type propagator struct{ p propagation.TextMapPropagator }

func (p propagator) Inject(ctx context.Context, c hook.Carrier) { p.p.Inject(ctx, c) }
func (p propagator) Extract(ctx context.Context, c hook.Carrier) context.Context {
	return p.p.Extract(ctx, c)
}
func (p propagator) Fields() []string { return p.p.Fields() }

// Span attributes.
const (
	attrCQRSID  = attribute.Key("cqrsync.cqrs_id")
	attrSignal  = attribute.Key("cqrsync.signal")
	attrOutcome = attribute.Key("cqrsync.outcome")
)

// Span start options, made once.
var (
	kindInternal = trace.WithSpanKind(trace.SpanKindInternal)
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	opSend       = attribute.String("messaging.operation.type", "send")
	opProcess    = attribute.String("messaging.operation.type", "process")
)

// TraceCapture starts the "cqrsync capture" span.
func (h *Hooks) TraceCapture(ctx context.Context, cqrsID, signal string) (context.Context, func(error)) {
	ctx, span := h.tracer.Start(ctx, "cqrsync capture", kindInternal)
	if span.IsRecording() {
		span.SetAttributes(attrCQRSID.String(cqrsID), attrSignal.String(signal))
	}
	return ctx, func(err error) { endSpan(span, err) }
}

// TracePublish starts the "cqrsync publish" span, child of the capture
// span whose context headers carry, and writes its own context into them.
func (h *Hooks) TracePublish(ctx context.Context, cqrsID string, headers hook.Carrier) func(error) {
	ctx, span := h.tracer.Start(h.prop.Extract(ctx, headers), "cqrsync publish", kindProducer)
	if span.IsRecording() {
		span.SetAttributes(attrCQRSID.String(cqrsID), opSend)
	}
	h.prop.Inject(ctx, headers)
	return func(err error) { endSpan(span, err) }
}

// TraceApply starts the "cqrsync apply" span, child of the publish span
// whose context headers carry.
func (h *Hooks) TraceApply(ctx context.Context, cqrsID string, headers hook.Carrier) func(string, error) {
	_, span := h.tracer.Start(h.prop.Extract(ctx, headers), "cqrsync apply", kindConsumer)
	if span.IsRecording() {
		span.SetAttributes(attrCQRSID.String(cqrsID), opProcess)
	}
	return func(outcome string, err error) {
		if outcome != "" && span.IsRecording() {
			span.SetAttributes(attrOutcome.String(outcome))
		}
		endSpan(span, err)
	}
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// opts are the options of one attribute set, as the instruments take them
// (made once, so that recording allocates nothing).
type opts struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

// opt returns the cached options of the attributes cqrs_id=id and, when k2
// is not "", k2=v2, from cache.
func opt(cache *observe.Cache[opts], id, k2, v2 string) opts {
	return cache.Get(observe.Key{CQRSID: id, Label: v2}, func(observe.Key) opts {
		kvs := []attribute.KeyValue{attribute.String("cqrs_id", id)}
		if k2 != "" {
			kvs = append(kvs, attribute.String(k2, v2))
		}
		o := metric.WithAttributeSet(attribute.NewSet(kvs...))
		return opts{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}}
	})
}

// OnCapture counts captured rows, or the failed call.
func (h *Hooks) OnCapture(ctx context.Context, e hook.Capture) {
	o := opt(&h.bySignal, e.CQRSID, "signal", e.Signal)
	if e.Err != nil {
		h.captureErrors.Add(ctx, 1, o.add...)
		return
	}
	h.captured.Add(ctx, int64(e.Rows), o.add...)
}

// OnClaim counts failed claims.
func (h *Hooks) OnClaim(ctx context.Context, e hook.Claim) {
	if e.Err != nil {
		h.claimErrors.Add(ctx, 1)
	}
}

// OnPublish counts published and failed events and records the confirm
// latency.
func (h *Hooks) OnPublish(ctx context.Context, e hook.Publish) {
	h.published.Add(ctx, int64(e.Events-e.Failed))
	if e.Failed > 0 {
		h.publishFailures.Add(ctx, int64(e.Failed))
	}
	h.confirm.Record(ctx, e.Duration.Seconds())
}

// OnApply counts outcomes and records the batch's size and duration.
func (h *Hooks) OnApply(ctx context.Context, e hook.Apply) {
	o := opt(&h.byModel, e.CQRSID, "", "")
	h.applyDuration.Record(ctx, e.Duration.Seconds(), o.rec...)
	if e.Err != nil {
		h.applyErrors.Add(ctx, 1, o.add...)
		return
	}
	h.batchSize.Record(ctx, int64(e.Size), o.rec...)
	for _, oc := range observe.Outcomes(&e) {
		if oc.N > 0 {
			h.events.Add(ctx, int64(oc.N), opt(&h.byOutcome, e.CQRSID, "outcome", oc.Name).add...)
		}
	}
}

// OnRetry counts retries.
func (h *Hooks) OnRetry(ctx context.Context, e hook.Retry) {
	h.retries.Add(ctx, 1, opt(&h.byModel, e.CQRSID, "", "").add...)
}

// OnDeadLetter counts dead letters.
func (h *Hooks) OnDeadLetter(ctx context.Context, e hook.DeadLetter) {
	h.deadLetters.Add(ctx, 1, opt(&h.byModel, e.CQRSID, "", "").add...)
}

// OnLag records an applied event's end-to-end lag.
func (h *Hooks) OnLag(ctx context.Context, e hook.Lag) {
	h.lag.Record(ctx, e.Lag.Seconds(), opt(&h.byModel, e.CQRSID, "", "").rec...)
}

package otelhook_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/otelhook"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/obstest"
	"github.com/cqrsync/cqrsync/outbox"
)

// TestOneTraceFromCaptureToApply: a row captured on the master inside a
// request's span is published by the relay through RabbitMQ and applied on
// the replica, and the spans of all three form one trace: request →
// capture → publish → apply.
func TestOneTraceFromCaptureToApply(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	var h *otelhook.Hooks
	p := obstest.Start(t, obstest.Options{Observe: func(p *obstest.Pipeline) (hook.Hooks, hook.Propagator) {
		var err error
		h, err = otelhook.New(&otelhook.Config{TracerProvider: tp, MeterProvider: mp,
			Outbox: outbox.StatsFunc(p.MasterDriver), Broker: p.Transport, Queues: []string{p.Queue}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		return h, h.Propagator()
	}})

	ctx, request := tp.Tracer("test").Start(t.Context(), "request")
	p.Insert(ctx, t, 1, "Ada")
	request.End()

	var apply sdktrace.ReadOnlySpan
	cqrsynctesting.Eventually(t, 30*time.Second, "the apply span", func() bool {
		for _, s := range spans.Ended() {
			if s.Name() == "cqrsync apply" {
				apply = s
				return true
			}
		}
		return false
	})
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		byID[s.SpanContext().SpanID()] = s
	}
	// Walk up from the apply span: each parent must be the step before it.
	chain := []string{apply.Name()}
	for s := apply; s.Parent().IsValid(); {
		parent, ok := byID[s.Parent().SpanID()]
		if !ok {
			t.Fatalf("span %q has parent %v, which is not among the recorded spans", s.Name(), s.Parent().SpanID())
		}
		if parent.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Fatalf("span %q is in trace %v, want the request's %v", parent.Name(), parent.SpanContext().TraceID(), request.SpanContext().TraceID())
		}
		chain = append(chain, parent.Name())
		s = parent
	}
	want := []string{"cqrsync apply", "cqrsync publish", "cqrsync capture", "request"}
	if len(chain) != len(want) {
		t.Fatalf("span chain from the apply up = %q, want %q", chain, want)
	}
	for i := range want {
		if chain[i] != want[i] {
			t.Fatalf("span chain from the apply up = %q, want %q", chain, want)
		}
	}
	if apply.SpanKind() != trace.SpanKindConsumer || !apply.Parent().IsRemote() {
		t.Errorf("apply span kind %v, remote parent %v; want a consumer span under a remote parent", apply.SpanKind(), apply.Parent().IsRemote())
	}
	attrs := map[string]string{}
	for _, kv := range apply.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["cqrsync.cqrs_id"] != obstest.Model || attrs["cqrsync.outcome"] != "created" {
		t.Errorf("apply span attributes %v, want cqrs_id %s and outcome created", attrs, obstest.Model)
	}
	if got := p.ReplicaName(t, 1); got != "Ada" {
		t.Errorf("replica has name %q, want Ada", got)
	}

	// The metrics of the same run, read as an exporter would.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = true
		}
	}
	for _, name := range []string{"cqrsync.capture.events", "cqrsync.relay.published", "cqrsync.relay.confirm.duration",
		"cqrsync.consumer.events", "cqrsync.apply.batch.size", "cqrsync.apply.duration", "cqrsync.lag",
		"cqrsync.outbox.backlog", "cqrsync.outbox.oldest_age", "cqrsync.broker.queue.depth"} {
		if !got[name] {
			t.Errorf("metric %s not recorded; got %v", name, got)
		}
	}
}

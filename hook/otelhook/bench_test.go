package otelhook_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/otelhook"
	"github.com/cqrsync/cqrsync/hook/promhook"
)

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkEventHooks is the hooks' CPU cost of one event, as cqrsync makes
// the calls: its capture (span, header injection, counter), its publish
// (span from the headers, re-injected), its apply (span, outcome counters,
// batch histograms, lag). Batches are counted per event (batch of 1), an
// upper bound. Without hooks nothing is called. Spans go through a batch
// processor to an exporter that drops them.
func BenchmarkEventHooks(b *testing.B) {
	newOTel := func(b *testing.B, sample float64) *otelhook.Hooks {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
		h, err := otelhook.New(&otelhook.Config{TracerProvider: tp, MeterProvider: mp})
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name string
		make func(b *testing.B) (hook.Hooks, hook.Propagator)
	}{
		{"prometheus", func(*testing.B) (hook.Hooks, hook.Propagator) { return promhook.New(nil), nil }},
		{"otel", func(b *testing.B) (hook.Hooks, hook.Propagator) { h := newOTel(b, 1); return h, h.Propagator() }},
		{"prometheus+otel", func(b *testing.B) (hook.Hooks, hook.Propagator) {
			h := newOTel(b, 1)
			return hook.Join(promhook.New(nil), h), h.Propagator()
		}},
		{"prometheus+otel/sampled=10%", func(b *testing.B) (hook.Hooks, hook.Propagator) {
			h := newOTel(b, 0.1)
			return hook.Join(promhook.New(nil), h), h.Propagator()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, prop := tc.make(b)
			tr, _ := h.(hook.Tracer)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				cctx := ctx
				var endCapture func(error)
				if tr != nil {
					cctx, endCapture = tr.TraceCapture(ctx, "account", "SAVE")
				}
				headers := hook.MapCarrier{hook.HeaderCorrelationID: "c"}
				if prop != nil {
					prop.Inject(cctx, headers)
				}
				h.OnCapture(cctx, hook.Capture{CQRSID: "account", Signal: "SAVE", Rows: 1, Duration: time.Millisecond})
				if endCapture != nil {
					endCapture(nil)
				}
				if tr != nil {
					tr.TracePublish(ctx, "account", headers)(nil)
				}
				h.OnPublish(ctx, hook.Publish{Events: 1, Duration: time.Millisecond})
				var endApply func(string, error)
				if tr != nil {
					endApply = tr.TraceApply(ctx, "account", headers)
				}
				h.OnApply(ctx, hook.Apply{CQRSID: "account", Size: 1, Applied: 1, Duration: time.Millisecond})
				h.OnLag(ctx, hook.Lag{CQRSID: "account", Lag: 5 * time.Millisecond})
				if endApply != nil {
					endApply("created", nil)
				}
			}
		})
	}
}

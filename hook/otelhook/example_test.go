package otelhook_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/otelhook"
)

// Example follows one event's trace context from the master's capture,
// through the outbox headers, to the relay's publish and the replica's
// apply. In a service, pass h as MasterConfig.Hooks, outbox.Config.Hooks
// and ConsumerConfig.Hooks, and h.Propagator() as MasterConfig.Propagator:
// cqrsync then makes these calls itself.
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	h, err := otelhook.New(&otelhook.Config{TracerProvider: tp})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	// The master: the capture's span context goes into the outbox headers.
	ctx, endCapture := h.TraceCapture(ctx, "account", "SAVE")
	headers := hook.MapCarrier{}
	h.Propagator().Inject(ctx, headers)
	endCapture(nil)

	// The relay: the publish span continues it and replaces it in the
	// message's headers.
	h.TracePublish(context.Background(), "account", headers)(nil)
	// The replica: the apply span continues the publish.
	h.TraceApply(context.Background(), "account", headers)("created", nil)

	ended := spans.Ended()
	for i, s := range ended {
		parent := "none"
		for _, p := range ended[:i] {
			if p.SpanContext().SpanID() == s.Parent().SpanID() {
				parent = p.Name()
			}
		}
		fmt.Printf("%s (parent: %s, same trace: %v)\n", s.Name(), parent, s.SpanContext().TraceID() == ended[0].SpanContext().TraceID())
	}
	// Output:
	// cqrsync capture (parent: none, same trace: true)
	// cqrsync publish (parent: cqrsync capture, same trace: true)
	// cqrsync apply (parent: cqrsync publish, same trace: true)
}

package hook_test

import (
	"context"
	"testing"

	"github.com/cqrsync/cqrsync/hook"
)

// tracer records the order of its calls under its name.
type tracer struct {
	hook.Nop
	name  string
	calls *[]string
}

type ctxKey string

func (t tracer) OnCapture(context.Context, hook.Capture) {
	*t.calls = append(*t.calls, t.name+" OnCapture")
}

func (t tracer) TraceCapture(ctx context.Context, _, _ string) (context.Context, func(error)) {
	*t.calls = append(*t.calls, t.name+" TraceCapture saw "+string(ctx.Value(ctxKey("by")).(string)))
	return context.WithValue(ctx, ctxKey("by"), t.name), func(error) { *t.calls = append(*t.calls, t.name+" end capture") }
}

func (t tracer) TracePublish(context.Context, string, hook.Carrier) func(error) {
	return func(error) { *t.calls = append(*t.calls, t.name+" end publish") }
}

func (t tracer) TraceApply(context.Context, string, hook.Carrier) func(string, error) {
	return func(outcome string, _ error) { *t.calls = append(*t.calls, t.name+" end apply "+outcome) }
}

// counter is a Hooks without tracing.
type counter struct {
	hook.Nop
	n *int
}

func (c counter) OnCapture(context.Context, hook.Capture) { *c.n++ }

// TestJoin: Join calls every member in order, leaves nils out, flattens
// joins, chains the tracers' contexts and ends their spans innermost first.
func TestJoin(t *testing.T) {
	if hook.Join() != nil || hook.Join(nil, nil) != nil {
		t.Fatal("Join of nothing is not nil")
	}
	var n int
	only := counter{n: &n}
	if got := hook.Join(nil, only); got != hook.Hooks(only) {
		t.Fatalf("Join of one = %#v, want it", got)
	}
	if _, ok := hook.Join(only, counter{n: &n}).(hook.Tracer); ok {
		t.Fatal("Join of hooks without tracing implements Tracer")
	}

	var calls []string
	a, b := tracer{name: "a", calls: &calls}, tracer{name: "b", calls: &calls}
	j := hook.Join(hook.Join(a, only), nil, b)
	tr, ok := j.(hook.Tracer)
	if !ok {
		t.Fatal("Join with a tracer does not implement Tracer")
	}
	ctx, end := tr.TraceCapture(context.WithValue(context.Background(), ctxKey("by"), "caller"), "m", "SAVE")
	if ctx.Value(ctxKey("by")) != "b" {
		t.Errorf("capture context carries %v, want b's", ctx.Value(ctxKey("by")))
	}
	j.OnCapture(ctx, hook.Capture{})
	end(nil)
	tr.TracePublish(ctx, "m", hook.MapCarrier{})(nil)
	tr.TraceApply(ctx, "m", hook.MapCarrier{})("created", nil)
	want := []string{"a TraceCapture saw caller", "b TraceCapture saw a", "a OnCapture", "b OnCapture",
		"b end capture", "a end capture", "a end publish", "b end publish", "a end apply created", "b end apply created"}
	if len(calls) != len(want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("calls %q, want %q", calls, want)
		}
	}
	if n != 1 {
		t.Errorf("the non-tracing member saw %d captures, want 1", n)
	}
}

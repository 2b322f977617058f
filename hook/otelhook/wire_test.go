package otelhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/otelhook"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
)

// recordingPublisher keeps what a relay publishes.
type recordingPublisher struct {
	mu   sync.Mutex
	msgs []transport.Message
}

func (p *recordingPublisher) Publish(_ context.Context, msgs []transport.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

// TestTracedRelayKeepsDjangoBodies: every django-cqrs vector body, stored in
// the outbox with a capture's trace context, leaves a tracing relay byte for
// byte as an untraced relay sends it (only expires restamped) and decodes
// as before; the trace context travels in the headers only, continued by
// the publish span, beside the headers the event had.
func TestTracedRelayKeepsDjangoBodies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	files, err := filepath.Glob(filepath.Join(cqrsynctesting.VectorsDir(t), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var vc struct {
			Messages []struct {
				Body string `json:"body"`
			} `json:"messages"`
		}
		if json.Unmarshal(data, &vc) != nil {
			continue
		}
		for _, m := range vc.Messages {
			if _, err := cqrsync.DecodePayload([]byte(m.Body), time.Now()); err == nil {
				bodies = append(bodies, []byte(m.Body))
			}
		}
	}
	if len(bodies) < 25 {
		t.Fatalf("only %d vector bodies found; the vectors directory looks incomplete", len(bodies))
	}

	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h, err := otelhook.New(&otelhook.Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	capCtx, capture := tp.Tracer("test").Start(ctx, "capture")
	capture.End()
	stored := hook.MapCarrier{hook.HeaderCorrelationID: "corr-1"}
	h.Propagator().Inject(capCtx, stored)

	db := cqrsynctesting.OpenSQLite(t)
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	rows := make([]sqldialect.OutboxRow, len(bodies))
	for i, b := range bodies {
		p, _ := cqrsync.DecodePayload(b, time.Now())
		rows[i] = sqldialect.OutboxRow{CQRSID: p.CQRSID, Body: b, CreatedAt: created, Headers: stored}
	}
	if err := sqldialect.SQLite().InsertOutbox(ctx, sqldialect.FromSQL(db), rows); err != nil {
		t.Fatal(err)
	}
	pub := &recordingPublisher{}
	now := created.Add(time.Minute)
	relay, err := outbox.NewRelay(databasesql.New(db, sqldialect.SQLite()), &outbox.Config{Publisher: pub, Hooks: h, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := relay.RunOnce(ctx); err != nil || n != len(bodies) {
		t.Fatalf("RunOnce = %d, %v; want %d, nil", n, err, len(bodies))
	}
	if len(pub.msgs) != len(bodies) {
		t.Fatalf("published %d messages, want %d", len(pub.msgs), len(bodies))
	}
	for i, m := range pub.msgs {
		want := cqrsync.RestampExpires(nil, bodies[i], created, now)
		if !bytes.Equal(m.Body, want) {
			t.Fatalf("message %d body changed by tracing:\n got: %s\nwant: %s", i, m.Body, want)
		}
		got, err := cqrsync.DecodePayload(m.Body, now)
		if err != nil {
			t.Fatalf("message %d does not decode: %v", i, err)
		}
		orig, _ := cqrsync.DecodePayload(want, now)
		got.Headers, orig.Headers = nil, nil
		if !reflect.DeepEqual(got, orig) {
			t.Fatalf("message %d decodes to %+v, want %+v", i, got, orig)
		}
		if m.Headers[hook.HeaderCorrelationID] != "corr-1" {
			t.Fatalf("message %d headers %v lost the correlation id", i, m.Headers)
		}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(ctx, hook.MapCarrier(m.Headers)))
		if sc.TraceID() != capture.SpanContext().TraceID() || sc.SpanID() == capture.SpanContext().SpanID() {
			t.Fatalf("message %d headers %v: want the capture's trace continued by the publish span", i, m.Headers)
		}
	}
}

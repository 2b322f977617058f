package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// Compile-time checks that Transport implements the contract.
var (
	_ transport.Publisher   = (*rabbitmq.Transport)(nil)
	_ transport.Subscriber  = (*rabbitmq.Transport)(nil)
	_ transport.DeadLetters = (*rabbitmq.Transport)(nil)
)

func batchOf(cqrsID string, n int) []transport.Message {
	msgs := make([]transport.Message, n)
	for i := range msgs {
		msgs[i] = transport.Message{CQRSID: cqrsID, Body: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	return msgs
}

// TestPublishPipelined publishes a batch several confirm windows long and
// finds it in the queue, complete and in order.
func TestPublishPipelined(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := newID()
	q := b.boundQueue(t, id)
	tr := b.newTransport(t, "", func(c *rabbitmq.Config) { c.ConfirmWindow = 64 })

	msgs := batchOf(id, 1000)
	if err := tr.Publish(testContext(t), msgs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// Confirmed means enqueued: no waiting needed.
	if n := b.count(t, q); n != len(msgs) {
		t.Fatalf("queue holds %d messages after a confirmed Publish of %d", n, len(msgs))
	}
	for i, d := range b.drain(t, q, len(msgs)) {
		if string(d.Body) != string(msgs[i].Body) || d.RoutingKey != id {
			t.Fatalf("message %d: body %q key %q, want %q %q", i, d.Body, d.RoutingKey, msgs[i].Body, id)
		}
	}
}

// TestPublishUnroutable: mandatory messages that no queue is bound for come
// back, and exactly their indexes are reported; the others are delivered.
// Two of them share their body with routed messages, so the return must be
// matched by routing key too.
func TestPublishUnroutable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := newID()
	q := b.boundQueue(t, id)
	tr := b.newTransport(t, "", nil)

	msgs := batchOf(id, 8)
	nobody := newID()
	msgs[1].CQRSID = nobody
	msgs[4] = transport.Message{CQRSID: nobody, Body: msgs[3].Body}
	msgs[6] = transport.Message{CQRSID: id, Queue: "nobody", Body: msgs[5].Body}

	err := tr.Publish(testContext(t), msgs)
	var pe *transport.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("Publish = %v, want a *transport.PublishError", err)
	}
	if want := []int{1, 4, 6}; !slices.Equal(pe.Unroutable, want) || len(pe.Failed) != 0 {
		t.Fatalf("Unroutable = %v, Failed = %v; want %v and none (err: %v)", pe.Unroutable, pe.Failed, want, err)
	}
	if !errors.Is(err, rabbitmq.ErrUnroutable) || !strings.Contains(err.Error(), nobody) {
		t.Fatalf("error %q does not wrap ErrUnroutable or name the routing key", err)
	}
	got := b.drain(t, q, 5)
	for i, want := range []int{0, 2, 3, 5, 7} {
		if string(got[i].Body) != string(msgs[want].Body) {
			t.Errorf("delivered %d: %q, want message %d %q", i, got[i].Body, want, msgs[want].Body)
		}
	}

	// The channel is clean for the next batch: no stale return is taken for
	// one of its messages.
	if err := tr.Publish(testContext(t), batchOf(id, 3)); err != nil {
		t.Fatalf("next Publish: %v", err)
	}
}

// TestPublishCutMidBatch cuts the connection while a batch is on the wire:
// Publish reports the unconfirmed messages, every message it does not report
// is in the queue, and the next Publish succeeds after the reconnection.
func TestPublishCutMidBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := newID()
	q := b.boundQueue(t, id)
	p := cqrsynctesting.NewProxy(t, brokerAddr(t, b.url))
	tr := b.newTransport(t, p.URL(t, b.url), nil)
	ctx := testContext(t)

	if err := tr.Publish(ctx, batchOf(id, 1)); err != nil { // opens the channel
		t.Fatalf("first Publish: %v", err)
	}
	const n = 4000
	msgs := batchOf(id, n)
	for i := range msgs {
		msgs[i].Body = fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", 200))
	}
	cut := p.CutAfter(300 << 10) // well inside the ~1.2 MB of the batch
	err := tr.Publish(ctx, msgs)
	<-cut
	var pe *transport.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, rabbitmq.ErrConnectionLost) {
		t.Fatalf("Publish = %v, want a PublishError wrapping ErrConnectionLost", err)
	}
	// How many were confirmed before the cut depends on the broker's pace;
	// the last ones cannot have been.
	if len(pe.Failed) == 0 || pe.Failed[len(pe.Failed)-1] != n-1 || !slices.IsSorted(pe.Failed) {
		t.Fatalf("Failed lists %d of %d messages: %v", len(pe.Failed), n, pe.Failed)
	}
	t.Logf("%d of %d messages unconfirmed at the cut", len(pe.Failed), n)

	// The next Publish waits for the reconnection.
	if err := tr.Publish(ctx, []transport.Message{{CQRSID: id, Body: []byte("after")}}); err != nil {
		t.Fatalf("Publish after reconnection: %v", err)
	}

	// Nothing silently dropped: every message not listed is in the queue.
	total := b.count(t, q)
	seen := make(map[string]bool, total)
	for _, d := range b.drain(t, q, total) {
		seen[string(d.Body)] = true
	}
	failed := make(map[int]bool, len(pe.Failed))
	for _, i := range pe.Failed {
		failed[i] = true
	}
	for i, m := range msgs {
		if !failed[i] && !seen[string(m.Body)] {
			t.Fatalf("message %d was not reported as failed but is not in the queue", i)
		}
	}
	if !seen["after"] {
		t.Fatal("the message published after the reconnection is missing")
	}
}

// TestPublishWaitsForBroker: while the broker is unreachable Publish waits
// for the reconnection, bounded by its context, then succeeds.
func TestPublishWaitsForBroker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := newID()
	q := b.boundQueue(t, id)
	p := cqrsynctesting.NewProxy(t, brokerAddr(t, b.url))
	tr := b.newTransport(t, p.URL(t, b.url), nil)

	p.Refuse(true)
	p.Drop()
	short, cancel := context.WithTimeout(testContext(t), 100_000_000) // 100 ms
	defer cancel()
	err := tr.Publish(short, batchOf(id, 3))
	var pe *transport.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, context.DeadlineExceeded) || !slices.Equal(pe.Failed, []int{0, 1, 2}) {
		t.Fatalf("Publish while the broker is down = %v, want a PublishError of all 3 for the deadline", err)
	}

	p.Refuse(false)
	if err := tr.Publish(testContext(t), batchOf(id, 3)); err != nil {
		t.Fatalf("Publish after the broker came back: %v", err)
	}
	b.waitCount(t, q, 3)
}

// TestPublishConcurrent: more concurrent Publish calls than channels all
// succeed and nothing is lost or duplicated.
func TestPublishConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := newID()
	q := b.boundQueue(t, id)
	tr := b.newTransport(t, "", func(c *rabbitmq.Config) { c.ChannelPool = 2; c.ConfirmWindow = 50 })
	ctx := testContext(t)

	const workers, per = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			msgs := make([]transport.Message, per)
			for i := range msgs {
				msgs[i] = transport.Message{CQRSID: id, Body: fmt.Appendf(nil, "%d-%d", w, i)}
			}
			errs <- tr.Publish(ctx, msgs)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	seen := make(map[string]bool)
	for _, d := range b.drain(t, q, workers*per) {
		if seen[string(d.Body)] {
			t.Fatalf("duplicate %s", d.Body)
		}
		seen[string(d.Body)] = true
	}
}

func TestPublishClosed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tr := b.newTransport(t, "", nil)
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	err := tr.Publish(testContext(t), batchOf("x", 2))
	var pe *transport.PublishError
	if !errors.Is(err, transport.ErrClosed) || !errors.As(err, &pe) || len(pe.Failed) != 2 {
		t.Fatalf("Publish after Close = %v, want ErrClosed for both messages", err)
	}
	if err := tr.Publish(testContext(t), nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("empty Publish after Close = %v, want ErrClosed", err)
	}
}

// TestIntoMissingQueueNeverDropped: DropUnroutable lets broadcasts that no
// replica is bound for go, as django-cqrs does; a message aimed at one queue
// (a dead letter put into its queue, a retry) must not go with them: its
// queue is missing or not bound, and the caller has to keep the event.
func TestIntoMissingQueueNeverDropped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tr := b.newTransport(t, "", func(c *rabbitmq.Config) { c.DropUnroutable = true })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := tr.Publish(ctx, []transport.Message{
		{CQRSID: "nobody_binds_this", Body: []byte("routed nowhere")},
		{CQRSID: "acc", Queue: "dead_letter_" + newID(), IntoQueue: true, Body: []byte("letter")},
		{CQRSID: "acc", Queue: newID(), Body: []byte("a retry to a queue not bound to acc")},
	})
	var pe *transport.PublishError
	if !errors.As(err, &pe) || !slices.Equal(pe.Unroutable, []int{1, 2}) || len(pe.Failed) != 0 {
		t.Fatalf("Publish = %v, want the messages aimed at one queue (indexes 1 and 2) reported unroutable", err)
	}
}

package rabbitmq_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// coalesceRun is a subscription to a fresh queue holding messages, on a
// transport whose warnings land in logs: a subscription channel closed by
// the broker (a second ack of a tag is PRECONDITION_FAILED) logs one.
type coalesceRun struct {
	b    *testBundle
	q    string
	logs syncBuffer
	sub  transport.Subscription
	ctx  context.Context
}

// startCoalesceRun subscribes with prefetch (0: the default) and publishes
// total messages {"i":0}…
func startCoalesceRun(t *testing.T, prefetch, total int) *coalesceRun {
	t.Helper()
	r := &coalesceRun{b: setup(t), ctx: testContext(t)}
	r.q = r.b.queue()
	id := newID()
	tr := r.b.newTransport(t, "", func(c *rabbitmq.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&r.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	r.sub = subscribe(t, tr, &transport.SubscribeParams{Queue: r.q, CQRSIDs: []string{id}, Prefetch: prefetch})
	if err := tr.Publish(r.ctx, batchOf(id, total)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return r
}

// closeAcked closes the subscription and checks that it had acked
// everything: the queue is empty and the channel was never lost.
func (r *coalesceRun) closeAcked(t *testing.T) {
	t.Helper()
	if err := r.sub.Close(); err != nil || r.sub.Err() != nil {
		t.Fatalf("Close = %v, Err = %v", err, r.sub.Err())
	}
	if n := r.b.count(t, r.q); n != 0 {
		t.Fatalf("queue holds %d messages after everything was acked", n)
	}
	if logs := r.logs.String(); logs != "" {
		t.Fatalf("warnings:\n%s", logs)
	}
}

// TestSubscribeAckInterleavedBatches: four workers ack their own batches of
// interleaved deliveries, as cqrsync.Consumer's workers do. Every message
// arrives once, none is redelivered (the channel stayed open: a second ack
// of a tag would have closed it), and the queue ends empty.
func TestSubscribeAckInterleavedBatches(t *testing.T) {
	t.Parallel()
	const total, workers = 3000, 4
	r := startCoalesceRun(t, 200, total)
	sub, ctx := r.sub, r.ctx

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	ins := make([]chan transport.Delivery, workers)
	for w := range ins {
		ins[w] = make(chan transport.Delivery, 50)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var batch []uint64
			for d := range ins[w] {
				batch = append(batch[:0], d.ID)
			fill:
				for len(batch) < 50 {
					select {
					case d, ok := <-ins[w]:
						if !ok {
							break fill
						}
						batch = append(batch, d.ID)
					default:
						break fill
					}
				}
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				if err := sub.Ack(ctx, batch...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(9, 9))
	seen := make(map[string]bool, total)
	for len(seen) < total {
		d := receive(t, sub.Deliveries())
		if d.Redelivered || seen[string(d.Body)] {
			t.Fatalf("delivery %d %q: redelivered=%v, seen before=%v", d.ID, d.Body, d.Redelivered, seen[string(d.Body)])
		}
		seen[string(d.Body)] = true
		ins[rng.IntN(workers)] <- d
	}
	for _, in := range ins {
		close(in)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Ack: %v", err)
	}
	select {
	case d := <-sub.Deliveries():
		t.Fatalf("unexpected delivery %d %q redelivered=%v", d.ID, d.Body, d.Redelivered)
	case <-time.After(100 * time.Millisecond):
	}
	r.closeAcked(t)
}

// TestSubscribeHeldDeliveryDoesNotStall: while the oldest delivery stays
// unsettled (a retry holds it), the acks of the later ones cannot go out in
// a multiple ack; they must still reach the broker, or the prefetch window
// would fill up and deliveries stop.
func TestSubscribeHeldDeliveryDoesNotStall(t *testing.T) {
	t.Parallel()
	const prefetch, total = 20, 300
	r := startCoalesceRun(t, prefetch, total)
	sub, ctx := r.sub, r.ctx
	held := receive(t, sub.Deliveries())
	var batch []uint64
	for i := 1; i < total; i++ {
		batch = append(batch, receive(t, sub.Deliveries()).ID)
		if len(batch) == 3 || i == total-1 { // fewer than a quarter of the prefetch
			if err := sub.Ack(ctx, batch...); err != nil {
				t.Fatalf("Ack: %v", err)
			}
			batch = batch[:0]
		}
	}
	if err := sub.Ack(ctx, held.ID); err != nil {
		t.Fatalf("Ack of the held delivery: %v", err)
	}
	r.closeAcked(t)
}

// TestSubscribeCloseSendsHeldAcks: acks still held when the subscription
// closes are sent before its channel closes, so a graceful stop requeues
// only what was not acked.
func TestSubscribeCloseSendsHeldAcks(t *testing.T) {
	t.Parallel()
	r := startCoalesceRun(t, 0, 10)
	sub, ctx := r.sub, r.ctx
	ids := make([]uint64, 10)
	for i := range ids {
		ids[i] = receive(t, sub.Deliveries()).ID
	}
	// ids[0] stays unsettled: the others wait behind it, then Close.
	if err := sub.Ack(ctx, ids[1:]...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.b.waitCount(t, r.q, 1)
	if d := r.b.drain(t, r.q, 1)[0]; !d.Redelivered {
		t.Fatalf("requeued message %q not marked redelivered", d.Body)
	}
}

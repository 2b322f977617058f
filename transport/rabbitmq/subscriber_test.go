package rabbitmq_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

func subscribe(t testing.TB, tr *rabbitmq.Transport, p *transport.SubscribeParams) transport.Subscription {
	t.Helper()
	sub, err := tr.Subscribe(testContext(t), p)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// TestSubscribeRoutes checks the bindings by their effect: the broadcast and
// the direct route reach the queue, the dead-letter route reaches only the
// dead-letter queue, and another queue's direct route reaches neither.
func TestSubscribeRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q, id := b.queue(), newID()
	tr := b.newTransport(t, "", nil)
	sub := subscribe(t, tr, &transport.SubscribeParams{Queue: q, CQRSIDs: []string{id}})

	ctx := testContext(t)
	msgs := []transport.Message{
		{CQRSID: id, Body: []byte("broadcast")},
		{CQRSID: id, Queue: q, Body: []byte("direct")},
		{CQRSID: id, Queue: transport.DeadLetterQueue(q), Body: []byte("dead")},
	}
	if err := tr.Publish(ctx, msgs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	err := tr.Publish(ctx, []transport.Message{{CQRSID: id, Queue: "other", Body: []byte("other")}})
	if !errors.Is(err, rabbitmq.ErrUnroutable) {
		t.Fatalf("Publish to another queue's route = %v, want ErrUnroutable", err)
	}
	for _, want := range msgs[:2] {
		d := receive(t, sub.Deliveries())
		if string(d.Body) != string(want.Body) || d.CQRSID != id || d.Queue != want.Queue || d.Redelivered || d.ID == 0 {
			t.Fatalf("delivery %+v, want body %q queue %q", d, want.Body, want.Queue)
		}
		if err := sub.Ack(ctx, d.ID); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	b.waitCount(t, transport.DeadLetterQueue(q), 1)
}

// TestSubscribeAck settles a window in mixed order: a prefix in one call,
// scattered ones, a repeated ID and an unknown one, and checks that the queue
// ends empty with the channel still alive.
func TestSubscribeAck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q, id := b.queue(), newID()
	tr := b.newTransport(t, "", nil)
	sub := subscribe(t, tr, &transport.SubscribeParams{Queue: q, CQRSIDs: []string{id}, Prefetch: 20})
	ctx := testContext(t)
	if err := tr.Publish(ctx, batchOf(id, 20)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ids := make([]uint64, 20)
	for i := range ids {
		ids[i] = receive(t, sub.Deliveries()).ID
	}
	if err := sub.Ack(ctx, ids[:5]...); err != nil { // multiple
		t.Fatalf("Ack prefix: %v", err)
	}
	if err := sub.Ack(ctx, ids[9], ids[7], ids[12]); err != nil { // singles
		t.Fatalf("Ack scattered: %v", err)
	}
	if err := sub.Ack(ctx, ids[9]); err == nil {
		t.Fatal("second Ack of one delivery succeeded")
	}
	if err := sub.Ack(ctx, ids[19]+1000); err == nil {
		t.Fatal("Ack of an unknown ID succeeded")
	}
	if err := sub.Nack(ctx, true, ids[5], ids[6]); err != nil { // multiple, requeued
		t.Fatalf("Nack: %v", err)
	}
	rest := slices.Concat(ids[8:9], ids[10:12], ids[13:])
	if err := sub.Ack(ctx, rest...); err != nil {
		t.Fatalf("Ack rest: %v", err)
	}
	// The two requeued ones come back, with new IDs.
	for range 2 {
		d := receive(t, sub.Deliveries())
		if !d.Redelivered || slices.Contains(ids, d.ID) {
			t.Fatalf("requeued delivery %+v: want Redelivered and a new ID", d)
		}
		if err := sub.Ack(ctx, d.ID); err != nil {
			t.Fatalf("Ack redelivered: %v", err)
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sub.Err(); err != nil {
		t.Fatalf("Err after Close = %v", err)
	}
	if _, ok := <-sub.Deliveries(); ok {
		t.Fatal("deliveries channel open after Close")
	}
	if n := b.count(t, q); n != 0 {
		t.Fatalf("queue holds %d messages after everything was acked", n)
	}
	if err := sub.Ack(ctx, ids[0]); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Ack after Close = %v, want ErrClosed", err)
	}
}

// TestSubscribeReconnects cuts the subscription's connection with deliveries
// outstanding: the subscription resumes by itself, the broker redelivers what
// was not settled with new IDs, and acking an old ID says it was requeued.
func TestSubscribeReconnects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q, id := b.queue(), newID()
	p := cqrsynctesting.NewProxy(t, brokerAddr(t, b.url))
	tr := b.newTransport(t, p.URL(t, b.url), nil)
	pub := b.newTransport(t, "", nil)
	sub := subscribe(t, tr, &transport.SubscribeParams{Queue: q, CQRSIDs: []string{id}})
	ctx := testContext(t)

	msgs := batchOf(id, 10)
	if err := pub.Publish(ctx, msgs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	seenIDs := make(map[uint64]bool)
	first := make([]transport.Delivery, 10)
	for i := range first {
		first[i] = receive(t, sub.Deliveries())
		seenIDs[first[i].ID] = true
	}
	if p.Drop() == 0 {
		t.Fatal("nothing to cut")
	}

	// Everything comes again (the broker requeued it all), marked
	// redelivered, with IDs never used before.
	var ack []uint64
	got := make(map[string]bool)
	for len(got) < len(msgs) {
		d := receive(t, sub.Deliveries())
		if !d.Redelivered || seenIDs[d.ID] {
			t.Fatalf("after the cut: delivery %d %q redelivered=%v; want redelivered with a fresh ID", d.ID, d.Body, d.Redelivered)
		}
		seenIDs[d.ID] = true
		got[string(d.Body)] = true
		ack = append(ack, d.ID)
	}
	err := sub.Ack(ctx, first[0].ID, first[1].ID)
	if !errors.Is(err, rabbitmq.ErrDeliveryRequeued) {
		t.Fatalf("Ack of deliveries from the lost channel = %v, want ErrDeliveryRequeued", err)
	}
	if err := sub.Nack(ctx, true, first[2].ID); err != nil {
		t.Fatalf("Nack(requeue) of a delivery from the lost channel = %v, want nil: it is requeued already", err)
	}
	if err := sub.Ack(ctx, ack...); err != nil {
		t.Fatalf("Ack of the redeliveries: %v", err)
	}
	if err := sub.Close(); err != nil || sub.Err() != nil {
		t.Fatalf("Close = %v, Err = %v", err, sub.Err())
	}
	if n := b.count(t, q); n != 0 {
		t.Fatalf("queue holds %d messages after everything was acked", n)
	}
}

// TestSubscribeRefused: a queue that exists with other arguments makes
// Subscribe fail with the broker's PRECONDITION_FAILED.
func TestSubscribeRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := b.queue()
	ch := b.channel(t)
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int32(10)}); err != nil {
		t.Fatalf("declare: %v", err)
	}
	tr := b.newTransport(t, "", nil)
	_, err := tr.Subscribe(testContext(t), &transport.SubscribeParams{Queue: q, CQRSIDs: []string{newID()}})
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("Subscribe = %v, want PRECONDITION_FAILED", err)
	}
}

// TestSubscribePermanentError: when the queue is deleted and declared again
// with other arguments, the subscription cannot resume; it ends and Err says
// why.
func TestSubscribePermanentError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q, id := b.queue(), newID()
	tr := b.newTransport(t, "", nil)
	sub := subscribe(t, tr, &transport.SubscribeParams{Queue: q, CQRSIDs: []string{id}})

	ch := b.channel(t)
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int32(10)}); err != nil {
		t.Fatalf("declare: %v", err)
	}
	select {
	case _, ok := <-sub.Deliveries():
		if ok {
			t.Fatal("unexpected delivery")
		}
	case <-time.After(waitTimeout):
		t.Fatal("subscription did not end")
	}
	var ae *amqp.Error
	if err := sub.Err(); !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("Err = %v, want PRECONDITION_FAILED", err)
	}
}

// TestSubscribeContextEnds: cancelling Subscribe's context ends the
// subscription without error and requeues what it held.
func TestSubscribeContextEnds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q, id := b.queue(), newID()
	tr := b.newTransport(t, "", nil)
	ctx, cancel := context.WithCancel(testContext(t))
	sub, err := tr.Subscribe(ctx, &transport.SubscribeParams{Queue: q, CQRSIDs: []string{id}})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := tr.Publish(testContext(t), batchOf(id, 3)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	receive(t, sub.Deliveries())
	cancel()
	for range sub.Deliveries() {
	}
	if err := sub.Err(); err != nil {
		t.Fatalf("Err after cancel = %v", err)
	}
	b.waitCount(t, q, 3)
}

func TestSubscribeValidates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tr := b.newTransport(t, "", nil)
	ctx := testContext(t)
	for _, p := range []*transport.SubscribeParams{
		nil,
		{CQRSIDs: []string{"a"}},
		{Queue: "q"},
		{Queue: "q.x", CQRSIDs: []string{"a"}},
		{Queue: "q", CQRSIDs: []string{"a"}, Prefetch: 70000},
	} {
		if _, err := tr.Subscribe(ctx, p); err == nil {
			t.Errorf("Subscribe(%+v) succeeded", p)
		}
	}
	_ = tr.Close()
	if _, err := tr.Subscribe(ctx, &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"a"}}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
}

// TestTransportCloseEndsSubscriptions: Transport.Close closes the
// deliveries channels, with a nil Err.
func TestTransportCloseEndsSubscriptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tr := b.newTransport(t, "", nil)
	var subs []transport.Subscription
	for range 3 {
		subs = append(subs, subscribe(t, tr, &transport.SubscribeParams{Queue: b.queue(), CQRSIDs: []string{newID()}}))
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, sub := range subs {
		if _, ok := <-sub.Deliveries(); ok || sub.Err() != nil {
			t.Fatalf("subscription %d: open=%v Err=%v after Transport.Close", i, ok, sub.Err())
		}
	}
}

package transporttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// testAckRemoves: an acked message is gone for good: it is not delivered to
// another subscription when its own closes.
func testAckRemoves(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s1 := b.subscribe(t, params(q, id))
	b.publish(t, msg(id, "acked"))
	d := b.receiveOne(t, s1)
	b.ack(t, s1, d)

	s2 := b.subscribe(t, params(q, id))
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b.publish(t, msg(id, "marker"))
	b.expectOnly(t, s2, "marker")
}

// testNackRequeue: a message nacked with requeue comes back, marked
// Redelivered.
func testNackRequeue(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))
	b.publish(t, msg(id, "requeued"))

	d := b.receiveOne(t, s)
	if d.Redelivered {
		t.Error("first delivery marked Redelivered")
	}
	if err := s.Nack(b.ctx, true, d.ID); err != nil {
		declared(t, "NackRequeue", "Nack(requeue)", err)
		t.Fatalf("Nack(requeue): %v", err)
	}
	again := b.receiveOne(t, s)
	if string(again.Body) != "requeued" || again.CQRSID != id {
		t.Fatalf("after Nack(requeue) got %s for %q, want \"requeued\" for %q", short(again.Body), again.CQRSID, id)
	}
	if !again.Redelivered {
		t.Error("requeued message not marked Redelivered")
	}
	b.ack(t, s, again)
}

// testNackDrop: a message nacked without requeue is dropped.
func testNackDrop(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))
	b.publish(t, msg(id, "dropped"))
	d := b.receiveOne(t, s)
	if err := s.Nack(b.ctx, false, d.ID); err != nil {
		t.Fatalf("Nack(no requeue): %v", err)
	}
	b.publish(t, msg(id, "marker"))
	b.expectOnly(t, s, "marker")
}

// testCloseRedelivers: deliveries left unsettled when a subscription closes
// go to the next subscription, marked Redelivered; the closed subscription's
// channel closes with a nil Err and its Ack reports ErrClosed.
func testCloseRedelivers(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s1 := b.subscribe(t, params(q, id))
	want := []string{"unsettled-0", "unsettled-1", "unsettled-2"}
	b.publish(t, msg(id, want[0]), msg(id, want[1]), msg(id, want[2]))
	held := b.receive(t, s1, len(want))

	s2 := b.subscribe(t, params(q, id))
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b.expectClosed(t, s1)
	if err := s1.Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
	if err := s1.Ack(b.ctx, held[0].ID); !isClosed(err) {
		t.Errorf("Ack after Close = %v, want an error wrapping transport.ErrClosed", err)
	}

	got := b.receive(t, s2, len(want))
	b.checkOrderOrSet(t, "redelivered", bodyStrings(got), want)
	for _, d := range got {
		if !d.Redelivered {
			t.Errorf("%s not marked Redelivered", short(d.Body))
		}
	}
	b.ack(t, s2, got...)
}

// testContextCancelRedelivers: cancelling Subscribe's context ends the
// subscription like Close.
func testContextCancelRedelivers(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	s1 := b.subscribeCtx(t, ctx, params(q, id))
	b.publish(t, msg(id, "unsettled"))
	b.receiveOne(t, s1)

	s2 := b.subscribe(t, params(q, id))
	cancel()
	b.expectClosed(t, s1)
	if err := s1.Err(); err != nil {
		t.Errorf("Err after the context was cancelled = %v, want nil", err)
	}
	d := b.receiveOne(t, s2)
	if string(d.Body) != "unsettled" || !d.Redelivered {
		t.Errorf("got %s (Redelivered %v), want \"unsettled\" redelivered", short(d.Body), d.Redelivered)
	}
	b.ack(t, s2, d)
}

// testPrefetch: no more than Prefetch deliveries are outstanding; settling
// one lets the next one through.
func testPrefetch(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	p := params(q, id)
	p.Prefetch = 3
	s := b.subscribe(t, p)

	const n = 8
	msgs := make([]transport.Message, n)
	want := make([]string, n)
	for i := range msgs {
		want[i] = fmt.Sprintf("prefetch-%d", i)
		msgs[i] = msg(id, want[i])
	}
	b.publish(t, msgs...)

	held := b.receive(t, s, p.Prefetch)
	b.expectQuiet(t, s) // the window is full

	var got []string
	// Settle one at a time; each settlement lets exactly one more through.
	for i := 0; len(held) > 0; i++ {
		d := held[0]
		held = held[1:]
		got = append(got, string(d.Body))
		b.ack(t, s, d)
		if len(got)+len(held) < n {
			held = append(held, b.receiveOne(t, s))
		}
		if i == 0 {
			b.expectQuiet(t, s) // one ack opened one slot, now taken again
		}
	}
	b.checkOrderOrSet(t, "deliveries", got, want)
}

// testCompetingSubscriptions: two subscriptions on one queue share its
// messages; none is lost or delivered twice.
func testCompetingSubscriptions(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	p := params(q, id)
	p.Prefetch = 10
	s1 := b.subscribe(t, p)
	s2 := b.subscribe(t, p)

	const n, batch = 200, 20
	want := make([]string, 0, n)
	for i := 0; i < n; i += batch {
		msgs := make([]transport.Message, batch)
		for j := range msgs {
			body := fmt.Sprintf("compete-%03d", i+j)
			want = append(want, body)
			msgs[j] = msg(id, body)
		}
		b.publish(t, msgs...)
	}

	count := map[string]int{}
	per := [2]int{}
	subs := [2]transport.Subscription{s1, s2}
	timeout := time.NewTimer(b.f.Timeout)
	defer timeout.Stop()
	for len(count) < n {
		var (
			d  transport.Delivery
			ok bool
			i  int
		)
		select {
		case d, ok = <-s1.Deliveries():
		case d, ok = <-s2.Deliveries():
			i = 1
		case <-timeout.C:
			t.Fatalf("timed out with %d of %d messages received (%d + %d)", len(count), n, per[0], per[1])
		}
		if !ok {
			t.Fatalf("subscription %d: deliveries channel closed (Err: %v)", i+1, subs[i].Err())
		}
		count[string(d.Body)]++
		per[i]++
		b.ack(t, subs[i], d)
	}
	b.expectQuiet(t, s1)
	b.expectQuiet(t, s2)
	for body, c := range count {
		if c > 1 {
			t.Errorf("%q delivered %d times", body, c)
		}
	}
	got := make([]string, 0, len(count))
	for body := range count {
		got = append(got, body)
	}
	if err := sameSet(got, want); err != nil {
		t.Fatal(err)
	}
	t.Logf("subscription 1 got %d messages, subscription 2 got %d", per[0], per[1])
}

// testDelayedRedelivery: NackDelay settles a delivery; the message behind
// it is delivered at once, and the nacked one comes back no sooner than the
// delay, marked redelivered, with the same body and its Attempt and Delays
// counted.
func testDelayedRedelivery(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))
	b.publish(t, msg(id, "delayed"))
	d := b.receiveOne(t, s)
	if d.Attempt != 1 || d.Delays != 0 {
		t.Fatalf("first delivery has Attempt %d, Delays %d; want 1 and 0: a transport that declares DelayedRedelivery counts deliveries and delays", d.Attempt, d.Delays)
	}
	delay := b.f.QuietPeriod
	start := time.Now()
	if err := s.NackDelay(b.ctx, delay, d.ID); err != nil {
		declared(t, "DelayedRedelivery", "NackDelay", err)
		t.Fatalf("NackDelay: %v", err)
	}
	b.publish(t, msg(id, "next"))
	next := b.receiveOne(t, s)
	if string(next.Body) != "next" {
		t.Fatalf("after NackDelay got %s first, want \"next\": the delayed message must not hold up the queue", short(next.Body))
	}
	b.ack(t, s, next)
	again := b.receiveOne(t, s)
	if elapsed := time.Since(start); elapsed < delay {
		t.Fatalf("the delayed message came back after %v, before its delay of %v", elapsed, delay)
	}
	if string(again.Body) != "delayed" || !again.Redelivered || again.Attempt != 2 || again.Delays != 1 {
		t.Fatalf("redelivery %s: Redelivered %v Attempt %d Delays %d; want \"delayed\", true, 2, 1", short(again.Body), again.Redelivered, again.Attempt, again.Delays)
	}
	b.ack(t, s, again)
}

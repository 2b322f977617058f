package transporttest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cqrsync/cqrsync/transport"
)

// testPublishBatch: one Publish of many messages; all arrive, once each.
func testPublishBatch(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))

	b.publish(t) // an empty batch is a no-op
	const n = 100
	msgs := make([]transport.Message, n)
	want := make([]string, n)
	for i := range msgs {
		want[i] = fmt.Sprintf("batch-%03d", i)
		msgs[i] = msg(id, want[i])
	}
	b.publish(t, msgs...)

	got := b.receive(t, s, n)
	b.checkOrderOrSet(t, "deliveries", bodyStrings(got), want)
	b.ack(t, s, got...)
}

// testBroadcast: a broadcast reaches every queue bound to its CQRS ID, and
// only those.
func testBroadcast(t *testing.T, b *bundle) {
	a, c := b.name("a"), b.name("c")
	q1, q2 := b.name("q1"), b.name("q2")
	s1 := b.subscribe(t, params(q1, a, c))
	s2 := b.subscribe(t, params(q2, a))

	b.publish(t, msg(a, "a-1"), msg(c, "c-1"), msg(a, "a-2"))
	b.publish(t, msg(a, "marker"))

	got1 := b.receive(t, s1, 4)
	b.checkOrderOrSet(t, "q1 (bound to a and c)", bodyStrings(got1), []string{"a-1", "c-1", "a-2", "marker"})
	b.ack(t, s1, got1...)

	got2 := b.receiveUntil(t, s2, "marker")
	b.checkOrderOrSet(t, "q2 (bound to a only)", bodyStrings(got2), []string{"a-1", "a-2", "marker"})
	b.ack(t, s2, got2...)
	if !b.f.PerQueueOrder {
		b.expectQuiet(t, s2)
	}
}

// testDirectRoute: a message with Queue set reaches that queue only, even
// though another queue is bound to its CQRS ID.
func testDirectRoute(t *testing.T, b *bundle) {
	id := b.name("m")
	q1, q2 := b.name("q1"), b.name("q2")
	s1 := b.subscribe(t, params(q1, id))
	s2 := b.subscribe(t, params(q2, id))

	b.publish(t, direct(q1, id, "direct-1"))
	b.publish(t, msg(id, "marker"))

	got1 := b.receive(t, s1, 2)
	b.checkOrderOrSet(t, "target queue", bodyStrings(got1), []string{"direct-1", "marker"})
	b.ack(t, s1, got1...)
	b.expectOnly(t, s2, "marker")
}

// testDeliveryFields: deliveries carry the CQRS ID, the target queue of a
// direct route (empty for a broadcast), the matching routing key and the
// headers.
func testDeliveryFields(t *testing.T, b *bundle) {
	a, c, q := b.name("a"), b.name("c"), b.name("q")
	s := b.subscribe(t, params(q, a, c))

	headers := map[string]string{"x-cqrsync-reason": "héllo: failed", "x-empty": ""}
	bm := msg(a, "broadcast")
	bm.Headers = headers
	b.publish(t, bm, direct(q, c, "direct"))

	got := b.receive(t, s, 2)
	byBody := map[string]transport.Delivery{}
	for _, d := range got {
		byBody[string(d.Body)] = d
	}
	if got[0].ID == got[1].ID {
		t.Errorf("two deliveries share ID %d", got[0].ID)
	}

	br, ok := byBody["broadcast"]
	if !ok {
		t.Fatalf("broadcast message missing; got %s", bodies(got))
	}
	if br.CQRSID != a || br.Queue != "" || br.IntoQueue {
		t.Errorf("broadcast delivery: CQRSID %q Queue %q IntoQueue %v; want %q, \"\", false", br.CQRSID, br.Queue, br.IntoQueue, a)
	}
	if !sameHeaders(br.Headers, headers) {
		t.Errorf("broadcast delivery headers %q, want %q", br.Headers, headers)
	}
	if br.Redelivered {
		t.Error("first delivery marked Redelivered")
	}

	dr, ok := byBody["direct"]
	if !ok {
		t.Fatalf("direct message missing; got %s", bodies(got))
	}
	if dr.CQRSID != c || dr.Queue != q || dr.IntoQueue {
		t.Errorf("direct delivery: CQRSID %q Queue %q IntoQueue %v; want %q, %q, false", dr.CQRSID, dr.Queue, dr.IntoQueue, c, q)
	}
	if len(dr.Headers) != 0 {
		t.Errorf("direct delivery has headers %q, none were published", dr.Headers)
	}
	b.ack(t, s, got...)
}

// testBodyBytes: bodies arrive byte for byte (empty, binary, invalid UTF-8,
// non-ASCII, larger than a 128 KiB AMQP frame), and the publisher may reuse
// its buffer as soon as Publish returns.
func testBodyBytes(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))

	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	large := make([]byte, 300<<10)
	for i := range large {
		large[i] = byte(i*7 + i>>8)
	}
	want := [][]byte{
		{},
		all,
		[]byte("\xff\xfe\x00\x80 invalid UTF-8 \xc3\x28"),
		[]byte("héllo wörld ✓ 日本語 🚀 \u2028"),
		[]byte(`{"signal_type":"SAVE","cqrs_id":"x","instance_data":{"name":"\"quoted\"\n\\"}}`),
		large,
	}
	// Publish from one shared buffer, then scribble over it.
	buf := bytes.Join(want, nil)
	msgs := make([]transport.Message, len(want))
	off := 0
	for i, w := range want {
		msgs[i] = transport.Message{CQRSID: id, Body: buf[off : off+len(w) : off+len(w)]}
		off += len(w)
	}
	b.publish(t, msgs...)
	for i := range buf {
		buf[i] = 'X'
	}

	got := b.receive(t, s, len(want))
	gotS, wantS := bodyStrings(got), make([]string, len(want))
	for i, w := range want {
		wantS[i] = string(w)
	}
	if err := sameSet(gotS, wantS); err != nil {
		t.Fatalf("bodies differ (after the publisher reused its buffer): %v", err)
	}
	if b.f.PerQueueOrder {
		for i := range want {
			if !bytes.Equal(got[i].Body, want[i]) {
				t.Fatalf("delivery %d: body %s, want %s", i, short(got[i].Body), short(want[i]))
			}
		}
	}
	b.ack(t, s, got...)
}

// testUnroutable: a message for a CQRS ID no queue is bound to, or for a
// direct route to an undeclared queue, reaches no queue; Publish drops it
// silently or reports it, as Capabilities.ReportsUnroutable declares; the rest
// of the batch is delivered.
func testUnroutable(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))
	err := b.tryPublish([]transport.Message{
		msg(b.name("nobody"), "unroutable"),
		msg(id, "routed"),
		direct(b.name("noqueue"), id, "unroutable-direct"),
	})
	if b.f.ReportsUnroutable {
		var pe *transport.PublishError
		if !errors.As(err, &pe) || !slices.Equal(pe.Unroutable, []int{0, 2}) || len(pe.Failed) != 0 {
			t.Fatalf("Publish = %v, want a *transport.PublishError with Unroutable [0 2] and nothing Failed", err)
		}
	} else if err != nil {
		t.Fatalf("Publish = %v, want nil: unroutable messages are dropped silently", err)
	}
	b.publish(t, msg(id, "marker"))
	got := b.receiveUntil(t, s, "marker")
	b.checkOrderOrSet(t, "deliveries", bodyStrings(got), []string{"routed", "marker"})
	if !b.f.PerQueueOrder {
		b.expectQuiet(t, s)
	}
	b.ack(t, s, got...)
}

// testConcurrentPublishers: several goroutines publish batches through one
// Publisher at once; everything arrives once, in per-goroutine order where
// the transport keeps order.
func testConcurrentPublishers(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	s := b.subscribe(t, params(q, id))

	const (
		goroutines = 4
		batches    = 10
		batchSize  = 5
		n          = goroutines * batches * batchSize
	)
	var (
		wg   sync.WaitGroup
		errs = make(chan error, goroutines)
	)
	want := make([]string, 0, n)
	for g := range goroutines {
		for i := range batches * batchSize {
			want = append(want, fmt.Sprintf("g%d-%03d", g, i))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bt := range batches {
				msgs := make([]transport.Message, batchSize)
				for i := range msgs {
					msgs[i] = msg(id, fmt.Sprintf("g%d-%03d", g, bt*batchSize+i))
				}
				if err := b.tryPublish(msgs); err != nil {
					errs <- fmt.Errorf("goroutine %d batch %d: %w", g, bt, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}

	got := b.receive(t, s, n)
	gotS := bodyStrings(got)
	if err := sameSet(gotS, want); err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	if b.f.PerQueueOrder {
		last := map[byte]string{}
		for _, body := range gotS {
			g := body[1]
			if body <= last[g] {
				t.Fatalf("goroutine %c: %q delivered after %q", g, body, last[g])
			}
			last[g] = body
		}
	}
	b.ack(t, s, got...)
}

// testPerQueueOrder: broadcasts and direct messages to one queue, over
// several Publish calls, arrive in publish order.
func testPerQueueOrder(t *testing.T, b *bundle) {
	a, c, q := b.name("a"), b.name("c"), b.name("q")
	s := b.subscribe(t, params(q, a, c))

	const calls, perCall = 15, 10
	var want []string
	for call := range calls {
		msgs := make([]transport.Message, perCall)
		for i := range msgs {
			body := fmt.Sprintf("order-%03d", call*perCall+i)
			want = append(want, body)
			switch i % 3 {
			case 0:
				msgs[i] = msg(a, body)
			case 1:
				msgs[i] = direct(q, c, body)
			default:
				msgs[i] = msg(c, body)
			}
		}
		b.publish(t, msgs...)
	}
	got := b.receive(t, s, len(want))
	if err := sameSequence(bodyStrings(got), want); err != nil {
		t.Fatalf("order: %v", err)
	}
	b.ack(t, s, got...)
}

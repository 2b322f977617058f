package transporttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// bundle is what one test works with.
type bundle struct {
	f   suite
	tr  Transport
	ctx context.Context // t.Context(): ends the test's subscriptions when it returns
	id  string

	mu     sync.Mutex
	queues map[string]bool // declared, for Transport.DeleteQueue
}

func setup(t *testing.T, o Options, newTransport func(tb testing.TB) Transport) *bundle {
	t.Helper()
	tr := newTransport(t)
	if tr.Publisher == nil || tr.Subscriber == nil {
		t.Fatal("transporttest: newTransport returned a Transport without Publisher or Subscriber")
	}
	f := suite{Capabilities: tr.Subscriber.Capabilities(), Options: o}
	if f.DeadLetterBrowse && tr.DeadLetters == nil {
		t.Fatal("transporttest: the transport declares Capabilities.DeadLetterBrowse but Transport.DeadLetters is nil")
	}
	if tr.DeadLetters != nil {
		if c := tr.DeadLetters.Capabilities(); c != f.Capabilities {
			t.Fatalf("transporttest: DeadLetters.Capabilities() = %+v differs from Subscriber.Capabilities() = %+v: a transport declares one set", c, f.Capabilities)
		}
	}
	b := &bundle{f: f, tr: tr, ctx: t.Context(), id: NewTestID(), queues: make(map[string]bool)}
	// Cleanups run last-in first-out: close first, then delete the queues.
	t.Cleanup(func() { b.deleteQueues(t) })
	t.Cleanup(func() {
		_ = tr.Publisher.Close()
		_ = tr.Subscriber.Close()
	})
	return b
}

func (b *bundle) deleteQueues(t *testing.T) {
	if b.tr.DeleteQueue == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.f.Timeout)
	defer cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	for q := range b.queues {
		if err := b.tr.DeleteQueue(ctx, q); err != nil {
			t.Logf("DeleteQueue(%q): %v", q, err)
		}
	}
}

// name returns a name unique to this test: queue names, CQRS IDs.
func (b *bundle) name(suffix string) string { return b.id + "_" + suffix }

// params returns subscribe parameters for queue bound to cqrsIDs.
func params(queue string, cqrsIDs ...string) *transport.SubscribeParams {
	return &transport.SubscribeParams{Queue: queue, CQRSIDs: cqrsIDs}
}

// subscribe opens a subscription that lives until the test ends (or it is
// closed), failing the test if it cannot.
func (b *bundle) subscribe(t *testing.T, p *transport.SubscribeParams) transport.Subscription {
	t.Helper()
	return b.subscribeCtx(t, b.ctx, p)
}

func (b *bundle) subscribeCtx(t *testing.T, ctx context.Context, p *transport.SubscribeParams) transport.Subscription {
	t.Helper()
	s, err := b.trySubscribe(t, ctx, p)
	if err != nil {
		t.Fatalf("Subscribe(queue %q): %v", p.Queue, err)
	}
	return s
}

func (b *bundle) trySubscribe(t *testing.T, ctx context.Context, p *transport.SubscribeParams) (transport.Subscription, error) {
	t.Helper()
	d := p.WithDefaults()
	b.mu.Lock()
	b.queues[d.Queue] = true
	b.queues[d.DeadLetterQueue] = true
	b.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, b.f.Timeout)
	defer cancel()
	// Subscribe's ctx bounds the subscription's life, so a timeout context
	// cannot be passed: wait for Subscribe in a goroutine instead.
	type result struct {
		s   transport.Subscription
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := b.tr.Subscriber.Subscribe(ctx, p)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		t.Cleanup(func() { _ = r.s.Close() })
		return r.s, nil
	case <-sctx.Done():
		t.Fatalf("Subscribe(queue %q) did not return within %v", p.Queue, b.f.Timeout)
		return nil, nil
	}
}

// publish publishes msgs in one call and fails the test on error.
func (b *bundle) publish(t *testing.T, msgs ...transport.Message) {
	t.Helper()
	if err := b.tryPublish(msgs); err != nil {
		t.Fatalf("Publish(%d messages): %v", len(msgs), err)
	}
}

func (b *bundle) tryPublish(msgs []transport.Message) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.f.Timeout)
	defer cancel()
	return b.tr.Publisher.Publish(ctx, msgs)
}

// msg returns a broadcast message for cqrsID.
func msg(cqrsID, body string) transport.Message {
	return transport.Message{CQRSID: cqrsID, Body: []byte(body)}
}

// direct returns a message for cqrsID aimed at queue only.
func direct(queue, cqrsID, body string) transport.Message {
	return transport.Message{CQRSID: cqrsID, Queue: queue, Body: []byte(body)}
}

// declared fails the test if err says the transport cannot do what it
// declares in its capabilities.
func declared(t *testing.T, capability, op string, err error) {
	t.Helper()
	if errors.Is(err, transport.ErrNotSupported) {
		t.Fatalf("the transport declares Capabilities.%s but %s returned ErrNotSupported: %v", capability, op, err)
	}
}

// receive waits for n deliveries.
func (b *bundle) receive(t *testing.T, s transport.Subscription, n int) []transport.Delivery {
	t.Helper()
	timer := time.NewTimer(b.f.Timeout)
	defer timer.Stop()
	out := make([]transport.Delivery, 0, n)
	for len(out) < n {
		select {
		case d, ok := <-s.Deliveries():
			if !ok {
				t.Fatalf("deliveries channel closed after %d of %d messages (Err: %v); got %s", len(out), n, s.Err(), bodies(out))
			}
			out = append(out, d)
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for message %d of %d; got %s", b.f.Timeout, len(out)+1, n, bodies(out))
		}
	}
	return out
}

// receiveOne waits for one delivery.
func (b *bundle) receiveOne(t *testing.T, s transport.Subscription) transport.Delivery {
	t.Helper()
	return b.receive(t, s, 1)[0]
}

// receiveUntil receives until a delivery with body marker arrives and
// returns everything received, the marker last.
func (b *bundle) receiveUntil(t *testing.T, s transport.Subscription, marker string) []transport.Delivery {
	t.Helper()
	var out []transport.Delivery
	timer := time.NewTimer(b.f.Timeout)
	defer timer.Stop()
	for {
		select {
		case d, ok := <-s.Deliveries():
			if !ok {
				t.Fatalf("deliveries channel closed before marker %q (Err: %v); got %s", marker, s.Err(), bodies(out))
			}
			out = append(out, d)
			if string(d.Body) == marker {
				return out
			}
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for marker %q; got %s", b.f.Timeout, marker, bodies(out))
		}
	}
}

// expectOnly checks that the next delivery on s is marker and, where order
// does not prove it, that nothing else arrives after it; then acks it.
func (b *bundle) expectOnly(t *testing.T, s transport.Subscription, marker string) {
	t.Helper()
	got := b.receiveUntil(t, s, marker)
	if len(got) > 1 {
		t.Fatalf("expected only %q, but %s arrived before it", marker, bodies(got[:len(got)-1]))
	}
	if !b.f.PerQueueOrder {
		b.expectQuiet(t, s)
	}
	b.ack(t, s, got...)
}

// expectQuiet checks that nothing arrives on s for QuietPeriod.
func (b *bundle) expectQuiet(t *testing.T, s transport.Subscription) {
	t.Helper()
	timer := time.NewTimer(b.f.QuietPeriod)
	defer timer.Stop()
	select {
	case d, ok := <-s.Deliveries():
		if !ok {
			t.Fatalf("deliveries channel closed unexpectedly (Err: %v)", s.Err())
		}
		t.Fatalf("unexpected delivery %s (redelivered %v)", bodies([]transport.Delivery{d}), d.Redelivered)
	case <-timer.C:
	}
}

// expectClosed waits for the deliveries channel of s to close, settling
// nothing it still receives.
func (b *bundle) expectClosed(t *testing.T, s transport.Subscription) {
	t.Helper()
	timer := time.NewTimer(b.f.Timeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-s.Deliveries():
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("deliveries channel still open %v after the subscription was ended", b.f.Timeout)
		}
	}
}

func (b *bundle) ack(t *testing.T, s transport.Subscription, ds ...transport.Delivery) {
	t.Helper()
	ids := make([]uint64, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	if err := s.Ack(b.ctx, ids...); err != nil {
		t.Fatalf("Ack(%v): %v", ids, err)
	}
}

// advance lets d pass for message expiration.
func (b *bundle) advance(d time.Duration) {
	if b.tr.AdvanceClock != nil {
		b.tr.AdvanceClock(d)
		return
	}
	time.Sleep(d) // real time must pass for a real broker to expire messages
}

// bodies formats delivery bodies for failure messages, shortened.
func bodies(ds []transport.Delivery) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, d := range ds {
		if i > 0 {
			sb.WriteString(" ")
		}
		if i == 20 {
			fmt.Fprintf(&sb, "... (%d in all)", len(ds))
			break
		}
		sb.WriteString(short(d.Body))
	}
	sb.WriteByte(']')
	return sb.String()
}

func short(body []byte) string {
	if len(body) > 40 {
		return fmt.Sprintf("%q...(%d bytes)", body[:40], len(body))
	}
	return fmt.Sprintf("%q", body)
}

// bodyStrings returns the bodies of ds as strings.
func bodyStrings(ds []transport.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

// sameSet reports whether got and want hold the same strings, each once.
func sameSet(got, want []string) error {
	count := make(map[string]int, len(want))
	for _, w := range want {
		count[w]++
	}
	var missing, extra []string
	for _, g := range got {
		if count[g] == 0 {
			extra = append(extra, g)
			continue
		}
		count[g]--
	}
	for _, w := range want {
		if count[w] > 0 {
			missing = append(missing, w)
			count[w] = 0
		}
	}
	if missing == nil && extra == nil {
		return nil
	}
	return fmt.Errorf("missing %q, unexpected or duplicated %q", missing, extra)
}

// sameSequence reports whether got equals want, naming the first difference.
func sameSequence(got, want []string) error {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Errorf("position %d: got %q, want %q (got %q)", i, got[i], want[i], got)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("got %d messages, want %d", len(got), len(want))
	}
	return nil
}

// checkOrderOrSet compares got with want as a sequence when the transport
// keeps per-queue order, as a set otherwise.
func (b *bundle) checkOrderOrSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	var err error
	if b.f.PerQueueOrder {
		err = sameSequence(got, want)
	} else {
		err = sameSet(got, want)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func sameHeaders(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// isClosed reports whether err says the object was closed.
func isClosed(err error) bool { return errors.Is(err, transport.ErrClosed) }

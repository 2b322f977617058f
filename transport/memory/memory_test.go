package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var _ transport.DeadLetters = (*memory.Broker)(nil)

// newFakeClock is an injectable clock for expiration tests.
func newFakeClock() *cqrsynctesting.Clock {
	return cqrsynctesting.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// newTransport opens a fresh broker for one conformance test.
func newTransport(tb testing.TB) transporttest.Transport {
	clock := newFakeClock()
	broker := memory.NewBroker(&memory.Config{Now: clock.Now})
	return transporttest.Transport{
		Publisher:      broker.Publisher(),
		Subscriber:     broker.Subscriber(),
		DeadLetters:    broker,
		CutConnections: func(testing.TB) { broker.CutConnections() },
		AdvanceClock:   clock.Advance,
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, transporttest.Options{}, newTransport)
}

// TestConformanceSharedBroker runs the suite with every test on one broker,
// as it runs against a shared real broker: the tests must not see each
// other's messages. This broker also delays redeliveries
// (Config.DelayedRedelivery), so the suite tests that capability here and
// its absence in TestConformance.
func TestConformanceSharedBroker(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	broker := memory.NewBroker(&memory.Config{Now: clock.Now, DelayedRedelivery: true})
	transporttest.Run(t, transporttest.Options{}, func(testing.TB) transporttest.Transport {
		return transporttest.Transport{
			Publisher:    broker.Publisher(),
			Subscriber:   broker.Subscriber(),
			DeadLetters:  broker,
			AdvanceClock: clock.Advance,
		}
	})
}

func BenchmarkTransport(b *testing.B) {
	transporttest.Benchmark(b, newTransport)
}

// testBundle is what one test of the broker's own behaviour works with.
type testBundle struct {
	ctx    context.Context
	broker *memory.Broker
	clock  *cqrsynctesting.Clock
	pub    transport.Publisher
	sub    transport.Subscriber
	id     string // CQRS ID
	queue  string
}

func setup(t *testing.T, cfg *memory.Config) *testBundle {
	t.Helper()
	clock := newFakeClock()
	if cfg == nil {
		cfg = &memory.Config{}
	}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	b := &testBundle{ctx: t.Context(), broker: memory.NewBroker(cfg), clock: clock, id: "account", queue: "billing"}
	b.pub = b.broker.Publisher()
	b.sub = b.broker.Subscriber()
	t.Cleanup(func() {
		_ = b.pub.Close()
		_ = b.sub.Close()
	})
	return b
}

func (b *testBundle) subscribe(t *testing.T, prefetch int) transport.Subscription {
	t.Helper()
	s, err := b.sub.Subscribe(b.ctx, &transport.SubscribeParams{Queue: b.queue, CQRSIDs: []string{b.id}, Prefetch: prefetch})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (b *testBundle) publish(t *testing.T, bodies ...string) {
	t.Helper()
	msgs := make([]transport.Message, len(bodies))
	for i, body := range bodies {
		msgs[i] = transport.Message{CQRSID: b.id, Body: []byte(body)}
	}
	if err := b.pub.Publish(b.ctx, msgs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func receive(t *testing.T, s transport.Subscription, n int) []transport.Delivery {
	t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	var out []transport.Delivery
	for len(out) < n {
		select {
		case d, ok := <-s.Deliveries():
			if !ok {
				t.Fatalf("deliveries closed after %d of %d (Err %v)", len(out), n, s.Err())
			}
			out = append(out, d)
		case <-timer.C:
			t.Fatalf("timed out after %d of %d deliveries", len(out), n)
		}
	}
	return out
}

func bodiesOf(ds []transport.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

func idsOf(ds []transport.Delivery) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func expectClosed(t *testing.T, s transport.Subscription) {
	t.Helper()
	select {
	case _, ok := <-s.Deliveries():
		if ok {
			t.Fatal("deliveries channel still open")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deliveries channel not closed")
	}
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

func TestAckUnknownAndTwice(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.subscribe(t, 0)
	b.publish(t, "a", "b")
	ds := receive(t, s, 2)

	if err := s.Ack(b.ctx, ds[0].ID); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	err := s.Ack(b.ctx, ds[0].ID, ds[1].ID, 999)
	if !errors.Is(err, memory.ErrUnknownDelivery) {
		t.Fatalf("Ack of a settled and an unknown ID = %v, want ErrUnknownDelivery", err)
	}
	// The valid ID in the same call was settled anyway.
	if n := b.broker.QueueLen(b.queue); n != 0 {
		t.Fatalf("QueueLen = %d, want 0", n)
	}
	if err := s.Nack(b.ctx, true, ds[1].ID); !errors.Is(err, memory.ErrUnknownDelivery) {
		t.Fatalf("Nack of a settled ID = %v, want ErrUnknownDelivery", err)
	}
}

func TestNackRequeueGoesToFrontInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.subscribe(t, 4)
	b.publish(t, numbered("m", 8)...)
	first := receive(t, s, 4) // m-00..m-03; m-04.. wait in the queue

	// Requeue m-03 and m-01 (in that order): they go back before m-04, in
	// their original order.
	if err := s.Nack(b.ctx, true, first[3].ID, first[1].ID); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	again := receive(t, s, 2)
	if got := bodiesOf(again); !slices.Equal(got, []string{"m-01", "m-03"}) {
		t.Fatalf("after requeue got %q, want m-01, m-03", got)
	}
	for _, d := range again {
		if !d.Redelivered {
			t.Errorf("%s not marked Redelivered", d.Body)
		}
	}
	if err := s.Ack(b.ctx, first[0].ID, first[2].ID, again[0].ID, again[1].ID); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	rest := receive(t, s, 4)
	if got := bodiesOf(rest); !slices.Equal(got, numbered("m", 8)[4:]) {
		t.Fatalf("rest = %q", got)
	}
}

func TestDeclareQueueKeepsMessages(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if err := b.broker.DeclareQueue(b.queue, b.id, "invoice"); err != nil {
		t.Fatalf("DeclareQueue: %v", err)
	}
	if err := b.broker.DeclareQueue("bad.name", b.id); err == nil {
		t.Fatal("DeclareQueue accepted a queue name with a dot")
	}
	if got, want := b.broker.Queues(), []string{b.queue, "dead_letter_" + b.queue}; !slices.Equal(got, want) {
		t.Fatalf("Queues() = %q, want %q", got, want)
	}
	b.publish(t, "kept")
	if err := b.pub.Publish(b.ctx, []transport.Message{
		{CQRSID: "invoice", Body: []byte("invoice")},
		{CQRSID: "unbound", Body: []byte("dropped")},
		{CQRSID: b.id, Queue: "dead_letter_" + b.queue, Body: []byte("dead")},
	}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if n := b.broker.QueueLen(b.queue); n != 2 {
		t.Fatalf("QueueLen(queue) = %d, want 2", n)
	}
	if n := b.broker.QueueLen("dead_letter_" + b.queue); n != 1 {
		t.Fatalf("QueueLen(dlq) = %d, want 1", n)
	}
	if n := b.broker.QueueLen("nope"); n != 0 {
		t.Fatalf("QueueLen(undeclared) = %d, want 0", n)
	}
	s := b.subscribe(t, 0)
	if got := bodiesOf(receive(t, s, 2)); !slices.Equal(got, []string{"kept", "invoice"}) {
		t.Fatalf("got %q", got)
	}
}

func TestQueueLenCountsUnacked(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.subscribe(t, 2)
	b.publish(t, "a", "b", "c")
	ds := receive(t, s, 2)
	if n := b.broker.QueueLen(b.queue); n != 3 {
		t.Fatalf("QueueLen = %d, want 3 (1 ready + 2 unacked)", n)
	}
	if err := s.Ack(b.ctx, idsOf(ds)...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	d := receive(t, s, 1)[0]
	if err := s.Nack(b.ctx, false, d.ID); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	if n := b.broker.QueueLen(b.queue); n != 0 {
		t.Fatalf("QueueLen = %d, want 0", n)
	}
}

func TestExpirationUsesInjectedClock(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if err := b.broker.DeclareQueue(b.queue, b.id); err != nil {
		t.Fatal(err)
	}
	err := b.pub.Publish(b.ctx, []transport.Message{
		{CQRSID: b.id, Body: []byte("short"), Expiration: time.Second},
		{CQRSID: b.id, Body: []byte("long"), Expiration: time.Minute},
		{CQRSID: b.id, Body: []byte("forever")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := b.broker.QueueLen(b.queue); n != 3 {
		t.Fatalf("QueueLen = %d, want 3", n)
	}
	b.clock.Advance(time.Second) // an age equal to the expiration is expired
	if n := b.broker.QueueLen(b.queue); n != 2 {
		t.Fatalf("QueueLen after 1s = %d, want 2", n)
	}
	// A requeued message keeps its original age.
	s := b.subscribe(t, 1)
	d := receive(t, s, 1)[0]
	if string(d.Body) != "long" {
		t.Fatalf("got %q, want long", d.Body)
	}
	b.clock.Advance(time.Minute)
	if err := s.Nack(b.ctx, true, d.ID); err != nil {
		t.Fatal(err)
	}
	if got := bodiesOf(receive(t, s, 1)); got[0] != "forever" {
		t.Fatalf("got %q, want forever (long expired after requeue)", got)
	}
}

func TestCutConnections(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s1 := b.subscribe(t, 0)
	s2 := b.subscribe(t, 0)
	b.publish(t, numbered("m", 4)...)
	held := receive(t, s1, 2) // round-robin: s1 gets m-00, m-02
	held = append(held, receive(t, s2, 2)...)
	if err := s1.Ack(b.ctx, held[0].ID); err != nil {
		t.Fatal(err)
	}

	if n := b.broker.CutConnections(); n != 2 {
		t.Fatalf("CutConnections cut %d subscriptions, want 2", n)
	}
	for _, s := range []transport.Subscription{s1, s2} {
		expectClosed(t, s)
		if err := s.Err(); !errors.Is(err, memory.ErrConnectionLost) {
			t.Fatalf("Err = %v, want ErrConnectionLost", err)
		}
	}
	if err := s1.Ack(b.ctx, held[1].ID); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Ack after cut = %v, want ErrClosed", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("Close after cut: %v", err)
	}

	// Publishers keep working; the unacked messages come back first, in
	// order, marked redelivered.
	b.publish(t, "after")
	s3 := b.subscribe(t, 0)
	got := receive(t, s3, 4)
	if bodies := bodiesOf(got); !slices.Equal(bodies, []string{"m-01", "m-02", "m-03", "after"}) {
		t.Fatalf("after the cut got %q", bodies)
	}
	for _, d := range got[:3] {
		if !d.Redelivered {
			t.Errorf("%s not marked Redelivered", d.Body)
		}
	}
}

func TestFailPublish(t *testing.T) {
	t.Parallel()
	errBroken := errors.New("broken")
	b := setup(t, &memory.Config{FailPublish: func(m *transport.Message) error {
		if string(m.Body[len(m.Body)-1:]) == "!" {
			return errBroken
		}
		return nil
	}})
	s := b.subscribe(t, 0)
	err := b.pub.Publish(b.ctx, []transport.Message{
		{CQRSID: b.id, Body: []byte("ok-0")},
		{CQRSID: b.id, Body: []byte("fail-1!")},
		{CQRSID: b.id, Body: []byte("ok-2")},
		{CQRSID: b.id, Body: []byte("fail-3!")},
	})
	var pe *transport.PublishError
	if !errors.As(err, &pe) || !slices.Equal(pe.Failed, []int{1, 3}) || !errors.Is(err, errBroken) {
		t.Fatalf("Publish = %v, want a PublishError for indexes [1 3] wrapping the hook's error", err)
	}
	b.publish(t, "marker")
	if got := bodiesOf(receive(t, s, 3)); !slices.Equal(got, []string{"ok-0", "ok-2", "marker"}) {
		t.Fatalf("got %q", got)
	}
}

func TestChaosDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t, &memory.Config{Chaos: &memory.Chaos{DuplicateRate: 1, Seed: 7}})
	s := b.subscribe(t, 0)
	b.publish(t, "a", "b")
	got := bodiesOf(receive(t, s, 4))
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "a", "b", "b"}) {
		t.Fatalf("got %q, want every message twice", got)
	}
}

// chaosRun publishes n messages to a broker with seed, one at a time,
// before anyone subscribes, and returns the delivery order.
func chaosRun(t *testing.T, seed int64, n int) []string {
	t.Helper()
	b := setup(t, &memory.Config{Chaos: &memory.Chaos{DuplicateRate: 0.2, ReorderRate: 0.3, Seed: seed}})
	if err := b.broker.DeclareQueue(b.queue, b.id); err != nil {
		t.Fatal(err)
	}
	for _, body := range numbered("m", n) {
		b.publish(t, body)
	}
	total := b.broker.QueueLen(b.queue)
	s := b.subscribe(t, 0)
	ds := receive(t, s, total)
	if err := s.Ack(b.ctx, idsOf(ds)...); err != nil {
		t.Fatal(err)
	}
	return bodiesOf(ds)
}

func TestChaosIsReproducible(t *testing.T) {
	t.Parallel()
	const n = 60
	run1, run2, other := chaosRun(t, 42, n), chaosRun(t, 42, n), chaosRun(t, 43, n)
	if !slices.Equal(run1, run2) {
		t.Fatalf("same seed, different runs:\n%q\n%q", run1, run2)
	}
	if slices.Equal(run1, other) {
		t.Fatal("different seeds gave the same run")
	}
	if len(run1) <= n {
		t.Fatalf("no duplicates in %d messages at rate 0.2", n)
	}
	if slices.IsSorted(run1) {
		t.Fatal("no reordering at rate 0.3")
	}
	seen := map[string]bool{}
	for _, body := range run1 {
		seen[body] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages delivered, want %d", len(seen), n)
	}
}

func TestChaosSeedPickedWhenZero(t *testing.T) {
	t.Parallel()
	if seed := memory.NewBroker(&memory.Config{Chaos: &memory.Chaos{}}).ChaosSeed(); seed == 0 {
		t.Fatal("ChaosSeed() = 0 with chaos enabled")
	}
	if seed := memory.NewBroker(nil).ChaosSeed(); seed != 0 {
		t.Fatalf("ChaosSeed() = %d without chaos", seed)
	}
}

func TestInvalidConfigPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("NewBroker accepted DuplicateRate 1.5")
		}
	}()
	memory.NewBroker(&memory.Config{Chaos: &memory.Chaos{DuplicateRate: 1.5}})
}

func TestCompetingRoundRobin(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s1, s2 := b.subscribe(t, 0), b.subscribe(t, 0)
	b.publish(t, numbered("m", 6)...)
	if got := bodiesOf(receive(t, s1, 3)); !slices.Equal(got, []string{"m-00", "m-02", "m-04"}) {
		t.Fatalf("subscription 1 got %q", got)
	}
	if got := bodiesOf(receive(t, s2, 3)); !slices.Equal(got, []string{"m-01", "m-03", "m-05"}) {
		t.Fatalf("subscription 2 got %q", got)
	}
}

func TestBodiesAreCopied(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.subscribe(t, 0)
	body := []byte("original")
	headers := map[string]string{"k": "v"}
	if err := b.pub.Publish(b.ctx, []transport.Message{{CQRSID: b.id, Body: body, Headers: headers}}); err != nil {
		t.Fatal(err)
	}
	copy(body, "XXXXXXXX")
	headers["k"] = "changed"

	d := receive(t, s, 1)[0]
	if string(d.Body) != "original" || d.Headers["k"] != "v" {
		t.Fatalf("delivery saw the publisher's later writes: %q %q", d.Body, d.Headers)
	}
	copy(d.Body, "YYYYYYYY")
	d.Headers["k"] = "consumer"
	if err := s.Nack(b.ctx, true, d.ID); err != nil {
		t.Fatal(err)
	}
	again := receive(t, s, 1)[0]
	if string(again.Body) != "original" || again.Headers["k"] != "v" {
		t.Fatalf("redelivery saw the consumer's writes: %q %q", again.Body, again.Headers)
	}
}

func TestPublishHonoursContextAndClose(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if err := b.broker.DeclareQueue(b.queue, b.id); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	cancel()
	err := b.pub.Publish(ctx, []transport.Message{{CQRSID: b.id, Body: []byte("x")}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled context = %v", err)
	}
	if n := b.broker.QueueLen(b.queue); n != 0 {
		t.Fatalf("QueueLen = %d after a cancelled publish", n)
	}
	if err := b.pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.pub.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.pub.Publish(b.ctx, nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
}

func TestSubscribeErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if _, err := b.sub.Subscribe(b.ctx, nil); err == nil {
		t.Fatal("Subscribe(nil) succeeded")
	}
	ctx, cancel := context.WithCancel(b.ctx)
	cancel()
	if _, err := b.sub.Subscribe(ctx, &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"m"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with a cancelled context = %v", err)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.subscribe(t, 0)
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	for range 2 {
		if err := b.sub.Close(); err != nil {
			t.Fatalf("Subscriber.Close: %v", err)
		}
	}
}

func TestDeadLetterErrorsAndCompaction(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	keep := func(context.Context, *transport.Message) (transport.DeadLetterAction, error) {
		return transport.DeadLetterKeep, nil
	}
	if _, err := b.broker.ScanDeadLetters(b.ctx, "nope", keep); !errors.Is(err, memory.ErrQueueNotFound) {
		t.Fatalf("ScanDeadLetters(undeclared) = %v", err)
	}
	if _, err := b.broker.PurgeDeadLetters(b.ctx, "nope"); !errors.Is(err, memory.ErrQueueNotFound) {
		t.Fatalf("PurgeDeadLetters(undeclared) = %v", err)
	}

	if err := b.broker.DeclareQueue(b.queue, b.id); err != nil {
		t.Fatal(err)
	}
	dlq := transport.DeadLetterQueue(b.queue)
	const n = 500
	msgs := make([]transport.Message, n)
	for i := range msgs {
		msgs[i] = transport.Message{CQRSID: b.id, Queue: dlq, Body: fmt.Appendf(nil, "dead-%03d", i)}
	}
	if err := b.pub.Publish(b.ctx, msgs); err != nil {
		t.Fatal(err)
	}
	// Remove all but every 50th, then check that the kept ones are still
	// there, in order, after the queue compacted.
	removed, err := b.broker.ScanDeadLetters(b.ctx, dlq, func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		var i int
		if _, err := fmt.Sscanf(string(m.Body), "dead-%d", &i); err != nil {
			return transport.DeadLetterKeep, err
		}
		if i%50 == 0 {
			return transport.DeadLetterKeep, nil
		}
		return transport.DeadLetterRemove, nil
	})
	if err != nil || removed != n-n/50 {
		t.Fatalf("scan removed %d, error %v", removed, err)
	}
	if l := b.broker.QueueLen(dlq); l != n/50 {
		t.Fatalf("QueueLen(dlq) = %d, want %d", l, n/50)
	}
	var left []string
	if _, err := b.broker.ScanDeadLetters(b.ctx, dlq, func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		left = append(left, string(m.Body))
		return transport.DeadLetterKeep, nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) != n/50 || left[0] != "dead-000" || left[9] != "dead-450" {
		t.Fatalf("left %q", left)
	}
}

// TestConcurrentStress hammers one queue from several publishers and
// competing subscriptions that ack, nack and close at random, checking that
// every message is finally acked and the broker ends empty (run with -race).
func TestConcurrentStress(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if err := b.broker.DeclareQueue(b.queue, b.id); err != nil {
		t.Fatal(err)
	}
	const publishers, perPublisher = 4, 250
	const n = publishers * perPublisher

	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		done     = make(chan struct{})
		stopOnce sync.Once
		wg       sync.WaitGroup
	)
	stop := func() { stopOnce.Do(func() { close(done) }) }
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; ; round++ {
				s, err := b.sub.Subscribe(b.ctx, &transport.SubscribeParams{Queue: b.queue, CQRSIDs: []string{b.id}, Prefetch: 7})
				if err != nil {
					t.Errorf("Subscribe: %v", err)
					return
				}
				// Each round leaves up to 4 deliveries unsettled (fewer than
				// the prefetch of 7), which Close puts back. A round also
				// ends when the queue is idle, as the held messages may be
				// the last ones.
			round:
				for i := range 40 {
					var d transport.Delivery
					select {
					case d = <-s.Deliveries():
					case <-time.After(20 * time.Millisecond):
						break round
					case <-done:
						_ = s.Close()
						return
					}
					switch {
					case i%10 == 1:
						continue // left unsettled until Close
					case (i+w+round)%4 == 0:
						if err := s.Nack(b.ctx, true, d.ID); err != nil {
							t.Errorf("Nack: %v", err)
						}
					default:
						if err := s.Ack(b.ctx, d.ID); err != nil {
							t.Errorf("Ack: %v", err)
						}
						mu.Lock()
						acked[string(d.Body)] = true
						if len(acked) == n {
							stop()
						}
						mu.Unlock()
					}
				}
				_ = s.Close()
			}
		}()
	}
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPublisher {
				if err := b.pub.Publish(b.ctx, []transport.Message{{CQRSID: b.id, Body: fmt.Appendf(nil, "p%d-%d", p, i)}}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		mu.Lock()
		t.Errorf("timed out with %d of %d acked", len(acked), n)
		mu.Unlock()
		stop()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if l := b.broker.QueueLen(b.queue); l != 0 {
		t.Fatalf("QueueLen = %d after everything was acked", l)
	}
}

// TestIntoMissingQueueFails: a message put into a queue by name (a dead
// letter) must not vanish when the queue is missing: Publish reports it, and
// the others of the batch are delivered.
func TestIntoMissingQueueFails(t *testing.T) {
	b := memory.NewBroker(nil)
	if err := b.DeclareQueue("here", "acc"); err != nil {
		t.Fatal(err)
	}
	err := b.Publisher().Publish(t.Context(), []transport.Message{
		{CQRSID: "acc", Body: []byte("routed")},
		{CQRSID: "acc", Queue: "dead_letter_gone", IntoQueue: true, Body: []byte("letter")},
		{CQRSID: "acc", Queue: "here", IntoQueue: true, Body: []byte("into")},
	})
	var pe *transport.PublishError
	if !errors.As(err, &pe) || !slices.Equal(pe.Failed, []int{1}) {
		t.Fatalf("Publish = %v, want a PublishError failing index 1 only", err)
	}
	if n := b.QueueLen("here"); n != 2 {
		t.Fatalf("queue here holds %d messages, want 2", n)
	}
}

package rabbitmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	neturl "net/url"
	"os/exec"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// waitTimeout bounds every wait for something that must happen.
const waitTimeout = 15 * time.Second

// testBundle is one test's share of the broker: its own exchange and queues,
// deleted when the test ends, and a raw amqp091 connection to set up and
// inspect things behind the transport's back.
type testBundle struct {
	url      string // the broker, without proxy
	exchange string
	conn     *amqp.Connection

	mu     sync.Mutex
	queues []string
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	url := testenv.AMQPURL(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	b := &testBundle{url: url, exchange: newID(), conn: conn}
	t.Cleanup(func() {
		ch, err := conn.Channel()
		if err == nil {
			b.mu.Lock()
			for _, q := range b.queues {
				if _, err := ch.QueueDelete(q, false, false, false); err != nil {
					t.Logf("cleanup: delete queue %s: %v", q, err)
					ch, _ = conn.Channel()
				}
			}
			b.mu.Unlock()
			_ = ch.ExchangeDelete(b.exchange, false, false)
		}
		_ = conn.Close()
	})
	return b
}

// queue returns a fresh queue name, deleted (with its default dead-letter
// queue) when the test ends.
func (b *testBundle) queue() string {
	q := newID()
	b.track(q, "dead_letter_"+q)
	return q
}

func (b *testBundle) track(queues ...string) {
	b.mu.Lock()
	b.queues = append(b.queues, queues...)
	b.mu.Unlock()
}

// config returns a test configuration on the bundle's exchange: quiet, with
// quick reconnections.
func (b *testBundle) config(url string) *rabbitmq.Config {
	return &rabbitmq.Config{
		URL:              url,
		Exchange:         b.exchange,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		ReconnectBackoff: rabbitmq.Backoff{Min: 5 * time.Millisecond, Max: 100 * time.Millisecond},
	}
}

// newTransport opens a transport (closed when the test ends). url "" means
// the broker without proxy; mutate may adjust the config.
func (b *testBundle) newTransport(t testing.TB, url string, mutate func(*rabbitmq.Config)) *rabbitmq.Transport {
	t.Helper()
	if url == "" {
		url = b.url
	}
	cfg := b.config(url)
	if mutate != nil {
		mutate(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	tr, err := rabbitmq.New(ctx, cfg)
	if err != nil {
		t.Fatalf("rabbitmq.New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// channel opens a raw channel, closed when the test ends.
func (b *testBundle) channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatalf("open raw channel: %v", err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// boundQueue declares a fresh queue bound to the bundle's exchange with keys.
func (b *testBundle) boundQueue(t testing.TB, keys ...string) string {
	t.Helper()
	q := newID()
	b.track(q)
	ch := b.channel(t)
	if err := ch.ExchangeDeclare(b.exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("declare exchange: %v", err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatalf("declare queue: %v", err)
	}
	for _, k := range keys {
		if err := ch.QueueBind(q, k, b.exchange, false, nil); err != nil {
			t.Fatalf("bind queue: %v", err)
		}
	}
	return q
}

// count returns the number of ready messages in q.
func (b *testBundle) count(t testing.TB, q string) int {
	t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatalf("open raw channel: %v", err)
	}
	defer ch.Close()
	qq, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect queue %s: %v", q, err)
	}
	return qq.Messages
}

// waitCount waits until q holds n ready messages.
func (b *testBundle) waitCount(t testing.TB, q string, n int) {
	t.Helper()
	waitFor(t, func() bool { return b.count(t, q) == n }, "queue %s to hold %d messages (has %d)", q, n, func() any { return b.count(t, q) })
}

// drain consumes n messages from q (acking them) and returns them in order.
func (b *testBundle) drain(t testing.TB, q string, n int) []amqp.Delivery {
	t.Helper()
	ch := b.channel(t)
	ds, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", q, err)
	}
	out := make([]amqp.Delivery, 0, n)
	timeout := time.After(waitTimeout)
	for len(out) < n {
		select {
		case d := <-ds:
			out = append(out, d)
		case <-timeout:
			t.Fatalf("drain %s: got %d of %d messages", q, len(out), n)
		}
	}
	_ = ch.Close()
	return out
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
// The message's trailing func() any arguments are evaluated at failure.
func waitFor(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			for i, a := range args {
				if f, ok := a.(func() any); ok {
					args[i] = f()
				}
			}
			t.Fatalf("timed out waiting for "+format, args...)
		}
		<-tick.C
	}
}

// receive waits for the next delivery of sub.
func receive(t testing.TB, ch <-chan transport.Delivery) transport.Delivery {
	t.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatal("deliveries channel closed")
		}
		return d
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a delivery")
	}
	panic("unreachable")
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newID returns a fresh name for queues, exchanges and CQRS IDs, as
// transporttest.NewTestID does.
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "cqrsynctest_" + hex.EncodeToString(b[:])
}

// brokerAddr returns the host:port of an AMQP URL.
func brokerAddr(t testing.TB, raw string) string {
	t.Helper()
	u, err := neturl.Parse(raw)
	if err != nil {
		t.Fatalf("parse broker URL: %v", err)
	}
	if u.Port() == "" {
		return u.Hostname() + ":5672"
	}
	return u.Host
}

// rabbitmqctl returns the path of rabbitmqctl. Where it is missing the test
// is skipped locally with why, and fails under CI, which has the broker's
// tools installed.
func rabbitmqctl(t *testing.T, why string) string {
	t.Helper()
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		skipOrFail(t, "rabbitmqctl not found: "+why)
	}
	return ctl
}

// skipOrFail skips the test locally and fails it under CI=true.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if testenv.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

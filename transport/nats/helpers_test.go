package nats_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/nats"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

// Compile-time checks that the transport implements the contract.
var (
	_ transport.Publisher   = (*nats.Transport)(nil)
	_ transport.Subscriber  = (*nats.Transport)(nil)
	_ transport.DeadLetters = (*nats.Transport)(nil)
)

// testBundle is one test's share of the server: its own exchange (stream,
// dead-letter stream and buckets), deleted when the test ends.
type testBundle struct {
	url      string // the server, without proxy
	exchange string
}

func setup(tb testing.TB) *testBundle {
	tb.Helper()
	b := &testBundle{url: testenv.NATSURL(tb), exchange: transporttest.NewTestID()}
	tb.Cleanup(func() { b.deleteAll(tb) })
	return b
}

// deleteAll deletes the exchange's streams and buckets.
func (b *testBundle) deleteAll(tb testing.TB) {
	nc, err := natsgo.Connect(b.url)
	if err != nil {
		tb.Logf("cleanup: connect: %v", err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range []string{b.exchange, b.exchange + "_dead_letters", "KV_" + b.exchange + "_queues", "KV_" + b.exchange + "_leases", "KV_" + b.exchange + "_retries"} {
		if err := js.DeleteStream(ctx, s); err != nil && err != jetstream.ErrStreamNotFound {
			tb.Logf("cleanup: delete stream %s: %v", s, err)
		}
	}
}

// config returns a Config for this test's exchange at serverURL.
func (b *testBundle) config(serverURL string) *nats.Config {
	return &nats.Config{
		URL:      serverURL,
		Exchange: b.exchange,
		LeaseTTL: 900 * time.Millisecond,
		AckWait:  3 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// open opens a transport with cfg, closed when the test ends.
func open(tb testing.TB, cfg *nats.Config) *nats.Transport {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := nats.New(ctx, cfg)
	if err != nil {
		tb.Fatalf("nats.New: %v", err)
	}
	tb.Cleanup(func() { _ = tr.Close() })
	return tr
}

// proxied returns a proxy in front of the server and the URL through it.
func (b *testBundle) proxied(tb testing.TB) (*cqrsynctesting.Proxy, string) {
	tb.Helper()
	u, err := url.Parse(b.url)
	if err != nil {
		tb.Fatalf("parse %s: %v", b.url, err)
	}
	p := cqrsynctesting.NewProxy(tb, u.Host)
	return p, p.URL(tb, b.url)
}

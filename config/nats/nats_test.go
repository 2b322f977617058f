package nats_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	natsgo "github.com/nats-io/nats.go"

	"github.com/cqrsync/cqrsync/config"
	confignats "github.com/cqrsync/cqrsync/config/nats"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/transport/nats"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, url, err string
		partitions         int
		ackWait            time.Duration
	}{
		{name: "plain", in: "nats://127.0.0.1:4222", url: "nats://127.0.0.1:4222"},
		{name: "settings", in: "nats://u:p@h:4222?partitions=8&stream=s&ack_wait=10s&lease_ttl=3s", url: "nats://u:p@h:4222", partitions: 8, ackWait: 10 * time.Second},
		{name: "bad partitions", in: "nats://h:4222?partitions=zero", err: "partitions"},
		{name: "typo", in: "nats://h:4222?partition=8", err: `unknown URL parameter "partition"`},
		{name: "not nats", in: "amqp://h/", err: "not nats://"},
		{name: "password withheld", in: "nats://u:secret@h:4222?ack_wait=x", err: "ack_wait"},
	} {
		cfg, err := confignats.ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: ParseURL(%q) error %v, want one naming %q and no password", tc.name, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || cfg.URL != tc.url || cfg.Partitions != tc.partitions || cfg.AckWait != tc.ackWait || cfg.PartitionKey == nil {
			t.Errorf("%s: ParseURL(%q) = %+v, %v", tc.name, tc.in, cfg, err)
		}
	}
}

// TestRegistered: a configuration file with a nats:// transport URL is
// valid once this package is imported (config refuses unknown schemes).
func TestRegistered(t *testing.T) {
	t.Parallel()
	_, err := config.Parse("cqrsync.yaml", []byte("transport:\n  url: nats://127.0.0.1:4222?partitions=3\n"), nil)
	if err != nil && strings.Contains(err.Error(), "transport.url") {
		t.Fatalf("nats:// refused: %v", err)
	}
}

// TestOpen: the URL's settings reach a working transport.
func TestOpen(t *testing.T) {
	t.Parallel()
	url := testenv.NATSURL(t)
	exchange := transporttest.NewTestID()
	t.Cleanup(func() { deleteExchange(t, url, exchange) })
	cfg, err := confignats.ParseURL(url + "?partitions=3")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Exchange = exchange
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := nats.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Capabilities().PerQueueOrder {
		t.Fatal("three partitions declared PerQueueOrder: the partition count did not reach the transport")
	}
}

func deleteExchange(t *testing.T, url, exchange string) {
	nc, err := natsgo.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, s := range []string{exchange, exchange + "_dead_letters", "KV_" + exchange + "_queues", "KV_" + exchange + "_leases", "KV_" + exchange + "_retries"} {
		_ = js.DeleteStream(context.Background(), s)
	}
}

package kafka_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cqrsync/cqrsync/config"
	"github.com/cqrsync/cqrsync/config/kafka"
	"github.com/cqrsync/cqrsync/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseURL(t *testing.T) {
	t.Parallel()
	cfg, fake, err := kafka.ParseURL("kafka://k1:9093,k2?exchange=sync&partitions=12&per_model=true")
	if err != nil {
		t.Fatal(err)
	}
	if fake || !slices.Equal(cfg.Brokers, []string{"k1:9093", "k2:9092"}) || cfg.Exchange != "sync" || cfg.Partitions != 12 || !cfg.TopicPerModel {
		t.Fatalf("got %+v (fake %v)", cfg, fake)
	}
	if _, fake, err := kafka.ParseURL("kafka://kfake"); err != nil || !fake {
		t.Fatalf("kafka://kfake: fake %v, error %v", fake, err)
	}
	for raw, want := range map[string]string{
		"amqp://localhost":           "not a kafka:// URL",
		"kafka://u:p@k1:9092":        "no user or path",
		"kafka://k1,,k2":             "empty broker",
		"kafka://k1?partitions=0":    "positive count",
		"kafka://k1?per_model=maybe": "true or false",
		"kafka://k1?acks=all":        "unknown URL parameter \"acks\"",
		"kafka://k1/path":            "no user or path",
		"kafka://?exchange=cqrs":     "names no broker",
	} {
		if _, _, err := kafka.ParseURL(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURL(%q) = %v, want an error containing %q", raw, err, want)
		}
	}
}

// TestRegistered: importing the package makes package config accept
// kafka:// transport URLs.
func TestRegistered(t *testing.T) {
	t.Parallel()
	doc := []byte("transport: {url: 'kafka://k1:9092,k2:9092?partitions=12', exchange: sync}\n")
	c, err := config.Parse("x.yaml", doc, nil)
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	if c.Transport.URL != "kafka://k1:9092,k2:9092?partitions=12" || c.Transport.Exchange != "sync" {
		t.Fatalf("transport section: %+v", c.Transport)
	}
}

// TestOpenKfake opens kafka://kfake: an in-process cluster that a message
// crosses, and that close stops.
func TestOpenKfake(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tr, err := kafka.Open(ctx, &config.TransportRequest{URL: "kafka://kfake?partitions=2", Exchange: "sync", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	}()
	sub, err := tr.Subscriber.Subscribe(ctx, &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"m"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := tr.Publisher.Publish(ctx, []transport.Message{{CQRSID: "m", Body: []byte("hello")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-sub.Deliveries():
		if string(d.Body) != "hello" {
			t.Fatalf("got %q", d.Body)
		}
		if err := sub.Ack(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
}

package nats_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrsync/cqrsync/transport"
)

// BenchmarkDrain measures, in one run, how fast a backlog leaves the
// stream through the transport (a subscription handing out b.N queued
// messages, acked in groups of 250 as a consumer batch does) and through
// JetStream's own client (a durable pull consumer on a stream of the same
// kind, fetching 1001 at a time, one AckAll per 250). It reports both and
// their ratio.
func BenchmarkDrain(b *testing.B) {
	bb := setup(b)
	ctx := b.Context()
	tr := open(b, bb.config(bb.url))
	n := b.N
	body := make([]byte, 512)
	for i := range body {
		body[i] = 'x'
	}
	const group = 250

	// Through the transport.
	p := &transport.SubscribeParams{Queue: "drain", CQRSIDs: []string{"item"}}
	s, err := tr.Subscribe(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	_ = s.Close() // the durable consumer keeps what arrives meanwhile
	publishAll(b, tr, n, body)
	s, err = tr.Subscribe(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	ids := make([]uint64, 0, group)
	for got := 0; got < n; got++ {
		var d transport.Delivery
		select {
		case d = <-s.Deliveries():
		case <-time.After(30 * time.Second):
			b.Fatalf("no delivery within 30s after %d", got)
		}
		ids = append(ids, d.ID)
		if len(ids) == group || got == n-1 {
			if err := s.Ack(ctx, ids...); err != nil {
				b.Fatal(err)
			}
			ids = ids[:0]
		}
	}
	viaTransport := float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	_ = s.Close()

	// Raw.
	nc, err := natsgo.Connect(bb.url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bb.exchange + "_raw", Subjects: []string{bb.exchange + "_raw.>"}, Retention: jetstream.InterestPolicy})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), bb.exchange+"_raw") }()
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckAllPolicy, MaxAckPending: -1})
	if err != nil {
		b.Fatal(err)
	}
	for sent := 0; sent < n; {
		var fs []jetstream.PubAckFuture
		for range min(500, n-sent) {
			f, err := js.PublishAsync(bb.exchange+"_raw.item", body)
			if err != nil {
				b.Fatal(err)
			}
			fs = append(fs, f)
		}
		for _, f := range fs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		sent += len(fs)
	}
	start = time.Now()
	for got := 0; got < n; {
		batch, err := cons.Fetch(min(1001, n-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		var last jetstream.Msg
		for m := range batch.Messages() {
			got++
			last = m
			if got%group == 0 {
				_ = m.Ack()
				last = nil
			}
		}
		if last != nil {
			_ = last.Ack()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsgo.ErrTimeout) {
			b.Fatal(err)
		}
	}
	_ = nc.Flush()
	raw := float64(n) / time.Since(start).Seconds()
	b.ReportMetric(viaTransport, "transport-msgs/s")
	b.ReportMetric(raw, "raw-msgs/s")
	b.ReportMetric(viaTransport/raw, "ratio")
}

func publishAll(b *testing.B, tr transport.Publisher, n int, body []byte) {
	b.Helper()
	msgs := make([]transport.Message, 500)
	for i := range msgs {
		msgs[i] = transport.Message{CQRSID: "item", Body: body}
	}
	for sent := 0; sent < n; sent += 500 {
		if err := tr.Publish(b.Context(), msgs[:min(500, n-sent)]); err != nil {
			b.Fatal(fmt.Errorf("publish: %w", err))
		}
	}
}

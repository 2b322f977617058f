package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrsync/cqrsync/transport"
)

// The transport next to raw franz-go on the same kfake cluster, in the
// same run: publishing b.N messages of 512 bytes in batches of 100, and
// consuming b.N waiting messages with a commit (ack) every 64.

const (
	benchBatch = 100
	benchAck   = 64
)

func benchBody(i int) []byte {
	b := fmt.Appendf(nil, `{"signal_type":"SAVE","cqrs_id":"item","instance_pk":%d,"instance_data":{"name":"`, i)
	b = append(b, strings.Repeat("x", 512-len(b)-3)...)
	return append(b, `"}}`...)
}

func BenchmarkPublish(b *testing.B) {
	b.Run("cqrsync", func(b *testing.B) {
		c := newCluster(b)
		tr := c.open(b, nil)
		sub, err := tr.Subscribe(b.Context(), &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"item"}})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		msgs := make([]transport.Message, benchBatch)
		for i := range msgs {
			msgs[i] = transport.Message{CQRSID: "item", Body: benchBody(i)}
		}
		b.ResetTimer()
		start := time.Now()
		for sent := 0; sent < b.N; sent += benchBatch {
			if err := tr.Publish(b.Context(), msgs[:min(benchBatch, b.N-sent)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("raw", func(b *testing.B) {
		c := newCluster(b)
		cl := rawTopic(b, c, "raw")
		// The same 100 bodies as the transport's, keyed as RowKey keys them.
		bodies := make([][]byte, benchBatch)
		for i := range bodies {
			bodies[i] = benchBody(i)
		}
		recs := make([]*kgo.Record, benchBatch)
		b.ResetTimer()
		start := time.Now()
		for sent := 0; sent < b.N; sent += benchBatch {
			k := min(benchBatch, b.N-sent)
			for i := range k {
				recs[i] = &kgo.Record{Topic: "raw", Key: strconv.AppendInt([]byte("item\x00"), int64(i), 10), Value: bodies[i]}
			}
			if err := cl.ProduceSync(b.Context(), recs[:k]...).FirstErr(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}

func BenchmarkConsume(b *testing.B) {
	b.Run("cqrsync", func(b *testing.B) {
		c := newCluster(b)
		tr := c.open(b, nil)
		ctx := b.Context()
		p := &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"item"}}
		sub, err := tr.Subscribe(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		_ = sub.Close() // declared; the messages wait
		msgs := make([]transport.Message, 0, benchBatch)
		for sent := 0; sent < b.N; sent += len(msgs) {
			msgs = msgs[:0]
			for i := range min(benchBatch, b.N-sent) {
				msgs = append(msgs, transport.Message{CQRSID: "item", Body: benchBody(sent + i)})
			}
			if err := tr.Publish(ctx, msgs); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		start := time.Now()
		if sub, err = tr.Subscribe(ctx, p); err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		ids := make([]uint64, 0, benchAck)
		for got := 0; got < b.N; got++ {
			d := <-sub.Deliveries()
			ids = append(ids, d.ID)
			if len(ids) == benchAck || got == b.N-1 {
				if err := sub.Ack(ctx, ids...); err != nil {
					b.Fatal(err)
				}
				ids = ids[:0]
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("raw", func(b *testing.B) {
		c := newCluster(b)
		ctx := b.Context()
		cl := rawTopic(b, c, "raw")
		recs := make([]*kgo.Record, 0, benchBatch)
		for sent := 0; sent < b.N; sent += len(recs) {
			recs = recs[:0]
			for i := range min(benchBatch, b.N-sent) {
				recs = append(recs, &kgo.Record{Topic: "raw", Key: strconv.AppendInt(nil, int64(sent+i), 10), Value: benchBody(sent + i)})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		start := time.Now()
		cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumerGroup("raw"), kgo.ConsumeTopics("raw"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		if err != nil {
			b.Fatal(err)
		}
		defer cons.Close()
		pending := make([]*kgo.Record, 0, benchAck)
		for got := 0; got < b.N; {
			cons.PollRecords(ctx, 1001).EachRecord(func(r *kgo.Record) {
				got++
				pending = append(pending, r)
				if len(pending) == benchAck || got == b.N {
					if err := cons.CommitRecords(ctx, pending...); err != nil {
						b.Error(err)
					}
					pending = pending[:0]
				}
			})
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}

// rawTopic creates topic with the transport's test partition count and
// returns a plain client.
func rawTopic(b *testing.B, c *cluster, topic string) *kgo.Client {
	cl := newPlainClient(b, c)
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
	defer cancel()
	req := c.config()
	if err := createTopic(ctx, cl, topic, req.Partitions); err != nil {
		b.Fatal(err)
	}
	return cl
}

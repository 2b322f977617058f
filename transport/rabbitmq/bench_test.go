package rabbitmq_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

// The benchmarks compare the transport with raw amqp091-go loops on the same
// broker, in the same run, with the same 512-byte persistent messages into
// one durable queue. Each reports msgs/s. On a shared machine, interleave
// several rounds and compare medians:
//
//	go test -c -o /tmp/rabbitmq.test ./transport/rabbitmq/
//	cd transport/rabbitmq && for i in 1 2 3 4 5 6 7; do
//		/tmp/rabbitmq.test -test.run '^$' -test.bench . -test.benchtime 30000x
//	done

var benchBody = []byte(`{"signal_type":"SAVE","cqrs_id":"bench","instance_data":{"name":"` + strings.Repeat("x", 512) + `"}}`)[:512]

func reportRate(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkPublishConfirmed publishes b.N messages in batches and waits for
// every confirmation: Transport.Publish against a raw loop that pipelines the
// same batch with deferred confirmations and waits for them, and a raw loop
// without confirms (the broker's intake, synchronised once at the end).
func BenchmarkPublishConfirmed(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("rabbitmq/batch=%d", batch), func(b *testing.B) { benchPublishTransport(b, batch) })
		b.Run(fmt.Sprintf("raw-confirms/batch=%d", batch), func(b *testing.B) { benchPublishRaw(b, batch, true) })
	}
	b.Run("raw-no-confirms", func(b *testing.B) { benchPublishRaw(b, 0, false) })
}

func benchPublishTransport(b *testing.B, batch int) {
	tb := setup(b)
	id := newID()
	tb.boundQueue(b, id)
	tr := tb.newTransport(b, "", nil)
	msgs := make([]transport.Message, batch)
	for i := range msgs {
		msgs[i] = transport.Message{CQRSID: id, Body: benchBody}
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += batch {
		if err := tr.Publish(ctx, msgs[:min(batch, b.N-sent)]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start)
}

func benchPublishRaw(b *testing.B, batch int, confirms bool) {
	tb := setup(b)
	id := newID()
	tb.boundQueue(b, id)
	ch := tb.channel(b)
	if confirms {
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
	}
	pub := amqp.Publishing{ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: benchBody}
	dcs := make([]*amqp.DeferredConfirmation, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if !confirms {
		for range b.N {
			if err := ch.Publish(tb.exchange, id, false, false, pub); err != nil {
				b.Fatal(err)
			}
		}
		// An RPC on the same channel returns after the broker handled
		// every publish before it.
		if err := ch.ExchangeDeclarePassive(tb.exchange, "topic", true, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		reportRate(b, start)
		return
	}
	for sent := 0; sent < b.N; sent += batch {
		dcs = dcs[:0]
		for range min(batch, b.N-sent) {
			dc, err := ch.PublishWithDeferredConfirm(tb.exchange, id, false, false, pub)
			if err != nil {
				b.Fatal(err)
			}
			dcs = append(dcs, dc)
		}
		for _, dc := range dcs {
			if !dc.Wait() {
				b.Fatal("nacked")
			}
		}
	}
	reportRate(b, start)
}

// BenchmarkTransport is the shared transport benchmark (publish and consume
// at once), comparable with the other transports'.
func BenchmarkTransport(b *testing.B) {
	transporttest.Benchmark(b, func(tb testing.TB) transporttest.Transport { return newSuiteTransport(tb, false) })
}

// BenchmarkConsume drains b.N messages that wait in the queue, acking every
// 100 with one multiple ack, with prefetch 1001: a Subscription against a raw
// amqp091 consumer.
//
// rabbitmq/ack-each acks every delivery with its own call, for comparison
// with the multiple acks of rabbitmq/ack-100.
func BenchmarkConsume(b *testing.B) {
	b.Run("rabbitmq/ack-100", func(b *testing.B) { benchConsume(b, false, 100) })
	b.Run("rabbitmq/ack-each", func(b *testing.B) { benchConsume(b, false, 1) })
	b.Run("raw/ack-100", func(b *testing.B) { benchConsume(b, true, 100) })
}

// fillConsumeQueue declares a subscription's queue and fills it with b.N
// messages quickly, without confirms.
func fillConsumeQueue(b *testing.B) (*testBundle, *rabbitmq.Transport, *transport.SubscribeParams) {
	tb := setup(b)
	id := newID()
	tr := tb.newTransport(b, "", nil)
	p := &transport.SubscribeParams{Queue: tb.queue(), CQRSIDs: []string{id}}
	sub, err := tr.Subscribe(b.Context(), p) // declares the queue
	if err != nil {
		b.Fatal(err)
	}
	_ = sub.Close()
	fill := tb.channel(b)
	pub := amqp.Publishing{ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: benchBody}
	for range b.N {
		if err := fill.Publish(tb.exchange, id, false, false, pub); err != nil {
			b.Fatal(err)
		}
	}
	tb.waitCount(b, p.Queue, b.N)
	return tb, tr, p
}

// rawConsume starts a raw amqp091 consumer of q with prefetch 1001.
func rawConsume(b *testing.B, tb *testBundle, q string) (*amqp.Channel, <-chan amqp.Delivery) {
	ch := tb.channel(b)
	if err := ch.Qos(1001, 0, false); err != nil {
		b.Fatal(err)
	}
	ds, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	return ch, ds
}

func benchConsume(b *testing.B, raw bool, group int) {
	tb, tr, p := fillConsumeQueue(b)
	q, ctx := p.Queue, b.Context()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if raw {
		_, ds := rawConsume(b, tb, q)
		for i := range b.N {
			d := <-ds
			if (i+1)%group == 0 || i == b.N-1 {
				if err := d.Ack(true); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportRate(b, start)
		return
	}
	sub, err := tr.Subscribe(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	ids := make([]uint64, 0, group)
	for i := range b.N {
		d, ok := <-sub.Deliveries()
		if !ok {
			b.Fatal(sub.Err())
		}
		ids = append(ids, d.ID)
		if len(ids) == group || i == b.N-1 {
			if err := sub.Ack(ctx, ids...); err != nil {
				b.Fatal(err)
			}
			ids = ids[:0]
		}
	}
	reportRate(b, start)
}

// BenchmarkConsumeWorkers drains b.N waiting messages through a consumer
// shaped like cqrsync.Consumer: one goroutine spreads the deliveries over
// workers by key (a worker's deliveries interleave with the others'), and
// each worker takes what waits for it, up to 100, "applies" it for 3 ms and
// acknowledges its own batch with one Ack call. Prefetch is 1001.
//
// raw/workers=1 is the same pipeline on a raw amqp091 channel, acking each
// batch with one multiple ack of its last tag (contiguous with one worker).
func BenchmarkConsumeWorkers(b *testing.B) {
	b.Run("rabbitmq/workers=1", func(b *testing.B) { benchConsumeWorkers(b, false, 1) })
	b.Run("rabbitmq/workers=4", func(b *testing.B) { benchConsumeWorkers(b, false, 4) })
	b.Run("raw/workers=1", func(b *testing.B) { benchConsumeWorkers(b, true, 1) })
}

const (
	benchBatch = 100
	benchApply = 3 * time.Millisecond
)

func benchConsumeWorkers(b *testing.B, raw bool, workers int) {
	tb, tr, p := fillConsumeQueue(b)
	q, ctx := p.Queue, b.Context()

	// ids yields the delivery IDs; ack settles one worker's batch.
	var ids <-chan uint64
	var ack func(batch []uint64) error
	if raw {
		ch, ds := rawConsume(b, tb, q)
		c := make(chan uint64)
		go func() {
			for d := range ds {
				c <- d.DeliveryTag
			}
		}()
		ids = c
		ack = func(batch []uint64) error { return ch.Ack(batch[len(batch)-1], true) }
	} else {
		sub, err := tr.Subscribe(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		c := make(chan uint64)
		go func() {
			for d := range sub.Deliveries() {
				c <- d.ID
			}
		}()
		ids = c
		ack = func(batch []uint64) error { return sub.Ack(ctx, batch...) }
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var batches atomic.Int64
	errs := make(chan error, workers)
	ins := make([]chan uint64, workers)
	for w := range ins {
		ins[w] = make(chan uint64, benchBatch)
		wg.Add(1)
		go func(in <-chan uint64) {
			defer wg.Done()
			batch := make([]uint64, 0, benchBatch)
			for first := range in {
				batch = append(batch[:0], first)
			fill:
				for len(batch) < benchBatch {
					select {
					case id, ok := <-in:
						if !ok {
							break fill
						}
						batch = append(batch, id)
					default:
						break fill
					}
				}
				time.Sleep(benchApply)
				if err := ack(batch); err != nil {
					errs <- err
					return
				}
				batches.Add(1)
			}
		}(ins[w])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range b.N {
		var id uint64
		select {
		case id = <-ids:
		case err := <-errs:
			b.Fatal(err)
		case <-time.After(waitTimeout):
			b.Fatalf("no delivery for %v", waitTimeout)
		}
		ins[rng.IntN(workers)] <- id // a random key's worker
	}
	for _, in := range ins {
		close(in)
	}
	wg.Wait()
	reportRate(b, start)
	b.ReportMetric(float64(b.N)/float64(max(1, batches.Load())), "msgs/batch")
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

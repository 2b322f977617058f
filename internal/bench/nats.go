package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/transport/nats"
)

// natsBroker is the run's share of a NATS server: its own exchange (a
// stream, its dead-letter stream and buckets), and a raw connection for
// the baselines, the queue depth and the clean-up.
type natsBroker struct {
	url      string
	exchange string
	nc       *natsgo.Conn
	js       jetstream.JetStream
	logger   *slog.Logger
}

func init() {
	RegisterBroker(dialNATS, "nats")
}

func dialNATS(ctx context.Context, rawURL, exchange string, logger *slog.Logger) (Broker, error) {
	nc, err := natsgo.Connect(rawURL, natsgo.Name("cqrsync bench raw"))
	if err != nil {
		return nil, fmt.Errorf("bench: connect to the NATS server at %s: %w", redactNATS(rawURL), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &natsBroker{url: rawURL, exchange: exchange, nc: nc, js: js, logger: logger}, nil
}

func redactNATS(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "<invalid URL>"
}

// Version names the server: "NATS 2.9.10 (JetStream)".
func (b *natsBroker) Version() string {
	return "NATS " + b.nc.ConnectedServerVersion() + " (JetStream)"
}

// Redacted is the server URL without its password.
func (b *natsBroker) Redacted() string { return redactNATS(b.url) }

// Transport opens the transport on the run's exchange, with one partition
// (one consumer process) and cqrsync's partition key.
func (b *natsBroker) Transport(ctx context.Context, name string) (Transport, error) {
	return nats.New(ctx, &nats.Config{
		URL: b.url, Exchange: b.exchange, Name: "cqrsync bench " + name,
		PartitionKey: cqrsync.PartitionKey, Logger: b.logger,
	})
}

// Track does nothing: Close deletes the run's streams, and every queue
// with them.
func (b *natsBroker) Track(...string) {}

// rawStream is the raw baselines' stream.
func (b *natsBroker) rawStream() string { return b.exchange + "_raw" }

// DeclareRaw creates the raw stream (subjects "<exchange>_raw.>", file
// storage, interest retention: what a consumed message costs the server is
// the same as on the transport's stream) and a durable pull consumer named
// queue on key's subject, acknowledged with AckAll, the cheapest
// settlement JetStream has (the transport acks each message: retries and
// dead letters settle messages one by one).
func (b *natsBroker) DeclareRaw(queue, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: b.rawStream(), Subjects: []string{b.rawStream() + ".>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.InterestPolicy,
	})
	if err != nil {
		return err
	}
	_, err = s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: queue, FilterSubject: b.rawStream() + "." + key,
		AckPolicy: jetstream.AckAllPolicy, MaxAckPending: -1,
	})
	return err
}

// RawPublish publishes n messages of body on key's subject, batch at a
// time with every publish acknowledgement of a batch awaited, as the
// relay's Publish does.
func (b *natsBroker) RawPublish(ctx context.Context, key string, body []byte, n, batch int) (float64, error) {
	subject := b.rawStream() + "." + key
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, 0, batch)
	for sent := 0; sent < n; {
		futures = futures[:0]
		for range min(batch, n-sent) {
			f, err := b.js.PublishAsync(subject, body)
			if err != nil {
				return 0, err
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return 0, err
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		sent += len(futures)
	}
	return math.Round(float64(n)/time.Since(start).Seconds()*10) / 10, nil
}

// RawConsume pulls n messages waiting for queue, in fetches of prefetch,
// acknowledging every ackEvery-th with one ack that settles all before it.
func (b *natsBroker) RawConsume(ctx context.Context, queue string, n, prefetch, ackEvery int) (float64, error) {
	cons, err := b.js.Consumer(ctx, b.rawStream(), queue)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	got := 0
	for got < n {
		batch, err := cons.Fetch(min(prefetch, n-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, err
		}
		var last jetstream.Msg
		for m := range batch.Messages() {
			got++
			last = m
			if got%ackEvery == 0 || got == n {
				if err := m.Ack(); err != nil {
					return 0, err
				}
				last = nil
			}
		}
		if last != nil {
			_ = last.Ack()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsgo.ErrTimeout) {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	if err := b.nc.Flush(); err != nil {
		return 0, err
	}
	return math.Round(float64(n)/time.Since(start).Seconds()*10) / 10, nil
}

// RawPipeline measures the raw pipeline (see [RawPipeliner]) on the raw
// stream: a durable pull consumer of its own with explicit acks (one per
// message), fetched in requests of up to 1001 by one goroutine, as the
// transport does, and applied by workers.
func (b *natsBroker) RawPipeline(ctx context.Context, body []byte, n, workers, batch int, apply func(ctx context.Context, worker, n int) error) (float64, error) {
	const key, queue = "pipeline", "pipeline"
	s, err := b.js.Stream(ctx, b.rawStream())
	if err != nil {
		return 0, fmt.Errorf("bench: raw pipeline: the raw stream (DeclareRaw first): %w", err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: queue, FilterSubject: b.rawStream() + "." + key,
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1,
	})
	if err != nil {
		return 0, err
	}
	if _, err := b.RawPublish(ctx, key, body, n, 500); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []jetstream.Msg, workers)
	errs := make(chan error, workers+1)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msgs := range batches {
				err := apply(ctx, w, len(msgs))
				for _, m := range msgs {
					if err == nil {
						err = m.Ack()
					}
				}
				if err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	pullErr := func() error {
		defer close(batches)
		var cur []jetstream.Msg
		for got := 0; got < n; {
			fetched, err := cons.Fetch(min(1001, n-got), jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				return err
			}
			before := got
			for m := range fetched.Messages() {
				got++
				if cur = append(cur, m); len(cur) == batch || got == n {
					select {
					case batches <- cur:
					case <-ctx.Done():
						return ctx.Err()
					}
					cur = nil
				}
			}
			if err := fetched.Error(); err != nil && !errors.Is(err, natsgo.ErrTimeout) {
				return err
			}
			if got == before {
				return fmt.Errorf("no message within 5s after %d of %d", got, n)
			}
		}
		return nil
	}()
	wg.Wait()
	close(errs)
	if err := errors.Join(pullErr, <-errs); err != nil {
		return 0, fmt.Errorf("bench: raw pipeline: %w", err)
	}
	if err := b.nc.Flush(); err != nil {
		return 0, err
	}
	return math.Round(float64(n)/time.Since(start).Seconds()*10) / 10, nil
}

// Depth returns the messages of queue's consumer not yet delivered.
func (b *natsBroker) Depth(queue string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := b.js.Consumer(ctx, b.exchange, queue)
	if err != nil {
		return 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.NumPending), nil
}

// Close deletes the run's streams and buckets, and disconnects.
func (b *natsBroker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, s := range []string{b.exchange, b.exchange + "_dead_letters", "KV_" + b.exchange + "_queues", "KV_" + b.exchange + "_leases", "KV_" + b.exchange + "_retries", b.rawStream()} {
		if err := b.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", s, err))
		}
	}
	b.nc.Close()
	return errors.Join(errs...)
}

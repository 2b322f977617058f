package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// rabbitBroker is the run's share of RabbitMQ: its own exchange and queues,
// and a raw amqp091 connection for the baselines, the queue-depth sampler
// and the clean-up.
type rabbitBroker struct {
	url      string
	exchange string
	conn     *amqp.Connection
	version  string
	logger   *slog.Logger

	mu      sync.Mutex
	queues  []string
	inspect *amqp.Channel // for passive declares (queue depth)
}

func init() {
	Register(dialRabbitMQ, "amqp", "amqps")
}

func dialRabbitMQ(ctx context.Context, rawURL, exchange string, logger *slog.Logger) (Broker, error) {
	cfg := amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US", Properties: amqp.Table{"connection_name": "cqrsync raw"}}
	cfg.Dial = amqp.DefaultDial(10 * time.Second)
	conn, err := amqp.DialConfig(rawURL, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to RabbitMQ at %s: %w", redact(rawURL), err)
	}
	b := &rabbitBroker{url: rawURL, exchange: exchange, conn: conn, logger: logger}
	if v, ok := conn.Properties["version"].(string); ok {
		b.version = "RabbitMQ " + v
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("declare exchange %s: %w", exchange, err)
	}
	b.inspect = ch
	_ = ctx
	return b, nil
}

func (b *rabbitBroker) Version() string { return b.version }

func (b *rabbitBroker) Redacted() string { return redact(b.url) }

func (b *rabbitBroker) Transport(ctx context.Context, name string) (Transport, error) {
	return rabbitmq.New(ctx, &rabbitmq.Config{URL: b.url, Exchange: b.exchange, Logger: b.logger, ConnectionName: "cqrsync " + name})
}

// redact returns raw without its password, or a placeholder if it is no URL.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "<invalid URL>"
}

// Track remembers queues to delete at the end.
func (b *rabbitBroker) Track(queues ...string) {
	b.mu.Lock()
	b.queues = append(b.queues, queues...)
	b.mu.Unlock()
}

// Close deletes the run's queues and exchange, and disconnects.
func (b *rabbitBroker) Close() error {
	ch, err := b.conn.Channel()
	var errs []error
	if err == nil {
		b.mu.Lock()
		for _, q := range b.queues {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				errs = append(errs, fmt.Errorf("delete queue %s: %w", q, err))
				if ch, err = b.conn.Channel(); err != nil {
					break
				}
			}
		}
		b.mu.Unlock()
		if ch != nil {
			if err := ch.ExchangeDelete(b.exchange, false, false); err != nil {
				errs = append(errs, fmt.Errorf("delete exchange %s: %w", b.exchange, err))
			}
		}
	} else {
		errs = append(errs, err)
	}
	errs = append(errs, b.conn.Close())
	return errors.Join(errs...)
}

// Depth returns the number of ready messages in queue (not counting those
// delivered and not yet acknowledged).
func (b *rabbitBroker) Depth(queue string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inspect == nil || b.inspect.IsClosed() {
		ch, err := b.conn.Channel()
		if err != nil {
			return 0, err
		}
		b.inspect = ch
	}
	q, err := b.inspect.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return q.Messages, nil
}

// DeclareRaw declares a durable queue bound to the exchange under key.
func (b *rabbitBroker) DeclareRaw(queue, key string) error {
	ch, err := b.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	b.Track(queue)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return err
	}
	return ch.QueueBind(queue, key, b.exchange, false, nil)
}

// RawPublish publishes n persistent messages of body to the exchange under
// key, in batches of batch, pipelining each batch with deferred confirms and
// waiting for all of its confirmations, as the relay's publisher must. It
// returns the confirmed messages per second.
func (b *rabbitBroker) RawPublish(ctx context.Context, key string, body []byte, n, batch int) (float64, error) {
	ch, err := b.conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return 0, err
	}
	pub := amqp.Publishing{ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: body}
	dcs := make([]*amqp.DeferredConfirmation, 0, batch)
	start := time.Now()
	for sent := 0; sent < n; sent += batch {
		dcs = dcs[:0]
		for range min(batch, n-sent) {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, b.exchange, key, false, false, pub)
			if err != nil {
				return 0, err
			}
			dcs = append(dcs, dc)
		}
		for _, dc := range dcs {
			ok, err := dc.WaitContext(ctx)
			if err != nil {
				return 0, err
			}
			if !ok {
				return 0, errors.New("the broker nacked a publish")
			}
		}
	}
	return math.Round(float64(n)/time.Since(start).Seconds()*10) / 10, nil
}

// RawConsume consumes n messages waiting in queue with the given prefetch,
// acknowledging every ackEvery with one multiple ack, and returns messages
// per second.
func (b *rabbitBroker) RawConsume(ctx context.Context, queue string, n, prefetch, ackEvery int) (float64, error) {
	ch, err := b.conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return 0, err
	}
	start := time.Now()
	ds, err := ch.ConsumeWithContext(ctx, queue, "", false, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	for i := range n {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-ds:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if !ok {
			return 0, errors.New("raw consumer channel closed")
		}
		if (i+1)%ackEvery == 0 || i == n-1 {
			if err := d.Ack(true); err != nil {
				return 0, err
			}
		}
	}
	return math.Round(float64(n)/time.Since(start).Seconds()*10) / 10, nil
}

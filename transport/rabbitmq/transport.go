package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Transport is a RabbitMQ connection pair speaking django-cqrs's topology and
// message format. It implements [transport.Publisher], [transport.Subscriber]
// and [transport.DeadLetters]; all its methods are safe for concurrent use.
//
// It keeps two connections, opened on first use: one for publishing (with a
// pool of confirm-mode channels) and one for subscriptions and dead-letter
// tools, so that the broker's flow control on publishers never stalls
// consumers and their acks. Both reconnect by themselves.
type Transport struct {
	cfg *Config

	pubConn *connManager
	subConn *connManager
	pool    *channelPool

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}

	wg sync.WaitGroup // background channel closes
}

// New validates cfg (nil means all defaults), connects the publishing
// connection to check the URL and credentials, and returns the transport.
// The subscribing connection opens on the first Subscribe or dead-letter
// call. A broker that is down makes New fail; retry it, or keep the
// Transport of an earlier successful New, which reconnects by itself.
//
// The context bounds the connection attempt only (30 s when it has no
// deadline).
func New(ctx context.Context, cfg *Config) (*Transport, error) {
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		cfg:     c,
		pubConn: newConnManager(c, "publish"),
		subConn: newConnManager(c, "consume"),
		subs:    make(map[*subscription]struct{}),
	}
	t.pool = newChannelPool(t)
	if _, err := t.pubConn.get(ctx); err != nil {
		_ = t.pubConn.close()
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	return t, nil
}

// Close ends every subscription (their unsettled deliveries go back to the
// queues), fails Publish calls still waiting for confirmations with
// [ErrConnectionLost], and closes both connections. Later calls return
// [transport.ErrClosed]. Close is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()

	for _, s := range subs {
		_ = s.Close()
	}
	t.pool.close()
	err := errors.Join(t.pubConn.close(), t.subConn.close())
	t.wg.Wait()
	if err != nil {
		return fmt.Errorf("rabbitmq: close: %w", err)
	}
	return nil
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

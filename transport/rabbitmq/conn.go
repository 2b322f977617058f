package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
)

// connManager owns one AMQP connection and keeps it alive: the first dial
// happens on demand in the caller's goroutine (so a wrong URL or password is
// returned to the caller), after which a background goroutine reconnects
// with backoff whenever the connection drops, until close.
type connManager struct {
	cfg      *Config
	role     string // "publish" or "consume": connection name suffix and log attr
	redacted string // cfg.URL without password, for errors and logs
	log      *slog.Logger

	dialSem chan struct{} // serialises first dials

	mu      sync.Mutex
	conn    *amqp.Connection // nil while reconnecting or before the first dial
	started bool             // the background loop owns conn
	closed  bool
	changed chan struct{} // closed and replaced whenever conn changes
	lastErr error         // last reconnection failure, for waiters' errors

	stop context.CancelFunc // cancels the background loop's dials and waits
	done chan struct{}      // closed by close
	wg   sync.WaitGroup
}

func newConnManager(cfg *Config, role string) *connManager {
	return &connManager{
		cfg:      cfg,
		role:     role,
		redacted: redactURL(cfg.URL),
		log:      cfg.Logger.With(slog.String("conn", role), slog.String("url", redactURL(cfg.URL))),
		dialSem:  make(chan struct{}, 1),
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// get returns a live connection (errors are not prefixed with "rabbitmq:"). Before the first successful dial it dials
// (and returns the dial error); after that it waits for the background loop
// to reconnect. Both are bounded by ctx.
func (m *connManager) get(ctx context.Context) (*amqp.Connection, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, transport.ErrClosed
		}
		if m.conn != nil && !m.conn.IsClosed() {
			c := m.conn
			m.mu.Unlock()
			return c, nil
		}
		if m.started {
			// Either reconnecting, or conn was just lost and the loop has
			// not noticed yet: both end with a change.
			changed, lastErr := m.changed, m.lastErr
			m.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-m.done:
				return nil, transport.ErrClosed
			case <-ctx.Done():
				if lastErr != nil {
					return nil, fmt.Errorf("waiting for the %s connection to %s to come back: %w (last attempt: %v)", m.role, m.redacted, ctx.Err(), lastErr)
				}
				return nil, fmt.Errorf("waiting for the %s connection to %s to come back: %w", m.role, m.redacted, ctx.Err())
			}
		}
		m.mu.Unlock()
		if err := m.firstDial(ctx); err != nil {
			return nil, err
		}
	}
}

// firstDial dials in the caller's goroutine and, on success, hands the
// connection to the background loop.
func (m *connManager) firstDial(ctx context.Context) error {
	select {
	case m.dialSem <- struct{}{}:
	case <-m.done:
		return transport.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("connect to %s: %w", m.redacted, ctx.Err())
	}
	defer func() { <-m.dialSem }()
	m.mu.Lock()
	if m.started || m.closed {
		m.mu.Unlock()
		return nil // someone else dialed (or closed) meanwhile; get looks again
	}
	m.mu.Unlock()

	c, err := m.dial(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		_ = c.Close()
		return transport.ErrClosed
	}
	loopCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.started = true
	m.setConnLocked(c)
	m.wg.Add(1)
	go m.loop(loopCtx, c)
	return nil
}

func (m *connManager) setConnLocked(c *amqp.Connection) {
	m.conn = c
	close(m.changed)
	m.changed = make(chan struct{})
}

// loop watches the connection and replaces it when it drops.
func (m *connManager) loop(ctx context.Context, c *amqp.Connection) {
	defer m.wg.Done()
	for {
		lost := c.NotifyClose(make(chan *amqp.Error, 1))
		var cause error
		select {
		case e, ok := <-lost:
			if ok && e != nil {
				cause = e
			} else {
				cause = errors.New("connection closed")
			}
		case <-ctx.Done():
			return
		}
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		m.setConnLocked(nil)
		m.mu.Unlock()
		m.log.Warn("rabbitmq: connection lost; reconnecting", slog.Any("error", cause))

		start := time.Now()
		for attempt := 0; ; attempt++ {
			if !sleepCtx(ctx, m.cfg.ReconnectBackoff.delay(attempt)) {
				return
			}
			var err error
			c, err = m.dial(ctx)
			if err == nil {
				m.mu.Lock()
				m.lastErr = nil
				m.setConnLocked(c)
				m.mu.Unlock()
				m.log.Info("rabbitmq: reconnected", slog.Int("attempts", attempt+1), slog.Duration("down", time.Since(start)))
				break
			}
			if ctx.Err() != nil {
				return
			}
			m.mu.Lock()
			m.lastErr = err
			m.mu.Unlock()
			m.log.Warn("rabbitmq: reconnection failed", slog.Int("attempt", attempt+1), slog.Any("error", err))
		}
	}
}

// dial opens a connection, bounded by ctx (30 s when ctx has no deadline).
// The returned error never contains the password.
func (m *connManager) dial(ctx context.Context) (*amqp.Connection, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultDialTimeout)
		defer cancel()
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(m.cfg.ConnectionName + " " + m.role)

	// amqp091 has no context-aware dial: dial the socket ourselves, bound the
	// TLS and AMQP handshakes with a deadline (amqp091 clears it once the
	// connection is open), and abort them if ctx ends first.
	var stopAbort func() bool
	cfg := amqp.Config{
		Heartbeat:  m.cfg.Heartbeat,
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			dl, _ := ctx.Deadline()
			if err := nc.SetDeadline(dl); err != nil {
				_ = nc.Close()
				return nil, err
			}
			stopAbort = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
			return nc, nil
		},
	}
	if m.cfg.TLS != nil {
		cfg.TLSClientConfig = m.cfg.TLS.Clone()
	}
	c, err := amqp.DialConfig(m.cfg.URL, cfg)
	if stopAbort != nil && !stopAbort() && err == nil {
		// ctx ended as the handshake completed: the socket deadline may
		// have been set in the past after amqp091 cleared it.
		_ = c.Close()
		err = ctx.Err()
	}
	if err != nil {
		return nil, m.dialError(err)
	}
	return c, nil
}

// dialError wraps a dial failure with the redacted URL and a hint.
func (m *connManager) dialError(err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused:
			return fmt.Errorf("connect to %s: %w: check the user name and password in Config.URL", m.redacted, err)
		case amqp.NotAllowed, amqp.InvalidPath:
			return fmt.Errorf("connect to %s: %w: check the vhost (the URL path) and the user's permissions on it", m.redacted, err)
		}
	}
	return fmt.Errorf("connect to %s: %w", m.redacted, err)
}

// close closes the connection and stops reconnecting. It is idempotent.
func (m *connManager) close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	c := m.conn
	if m.stop != nil {
		m.stop()
	}
	m.mu.Unlock()
	var err error
	if c != nil && !c.IsClosed() {
		err = c.CloseDeadline(time.Now().Add(5 * time.Second))
		if errors.Is(err, amqp.ErrClosed) {
			err = nil
		}
	}
	m.wg.Wait()
	// The loop may have installed a connection between our read of conn and
	// its exit.
	m.mu.Lock()
	if m.conn != nil && m.conn != c && !m.conn.IsClosed() {
		_ = m.conn.Close()
	}
	m.mu.Unlock()
	return err
}

// sleepCtx waits for d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

package rabbitmq

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by [Config.WithDefaults].
const (
	// DefaultURL is pika's default broker, the one django-cqrs uses when it
	// has no URL: guest/guest on localhost, vhost "/".
	DefaultURL = "amqp://guest:guest@localhost:5672/"
	// DefaultExchange is django-cqrs's exchange name.
	DefaultExchange = "cqrs"
	// DefaultHeartbeat is the AMQP heartbeat interval proposed to the broker.
	DefaultHeartbeat = 10 * time.Second
	// DefaultConnectionName is shown by the broker (rabbitmqctl
	// list_connections client_properties, management UI) with a " publish" or
	// " consume" suffix.
	DefaultConnectionName = "cqrsync"
	// DefaultChannelPool is the number of confirm-mode channels used for
	// publishing, i.e. how many Publish calls run at once.
	DefaultChannelPool = 4
	// DefaultConfirmWindow is the number of unconfirmed messages a Publish call
	// keeps in flight on its channel.
	DefaultConfirmWindow = 1000
	// DefaultReconnectMin is the first delay before a reconnection attempt
	// (after the immediate one).
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax caps the delay between reconnection attempts.
	DefaultReconnectMax = 15 * time.Second

	// defaultDialTimeout bounds a dial (TCP, TLS and AMQP handshake) when the
	// caller's context has no deadline.
	defaultDialTimeout = 30 * time.Second
	// maxPrefetch is the largest prefetch count AMQP can carry (a uint16).
	maxPrefetch = 65535
)

// Config configures a [Transport]. The zero value connects to [DefaultURL]
// with django-cqrs's settings; every field documents its default and unit.
type Config struct {
	// URL is the broker, "amqp://user:password@host:port/vhost" or amqps://
	// for TLS. Reserved characters in the user name or password must be
	// percent-encoded (see net/url.UserPassword). The vhost is honoured; an
	// empty path means "/". Note that django-cqrs ignores the vhost and always
	// uses "/": to share a mesh with Django services, use "/" here too.
	// Credentials never appear in errors or logs (the password is replaced by
	// "xxxxx"). Default [DefaultURL].
	URL string

	// Exchange is the topic exchange everything goes through. It is declared
	// durable, not auto-deleted, not internal, without arguments, as
	// django-cqrs does. Default [DefaultExchange] ("cqrs").
	Exchange string

	// TLS configures amqps:// connections. Nil uses the system roots and the
	// URL's host name. Setting it with an amqp:// URL is an error.
	TLS *tls.Config

	// Heartbeat is the AMQP heartbeat interval proposed to the broker; a dead
	// peer is detected after about three missed heartbeats. Default
	// [DefaultHeartbeat] (10 s). A heartbeat parameter in the URL wins.
	Heartbeat time.Duration

	// ConnectionName is the connection_name client property, suffixed with
	// " publish" or " consume" (one connection each). Default
	// [DefaultConnectionName].
	ConnectionName string

	// ChannelPool is the number of confirm-mode channels on the publishing
	// connection, which is how many Publish calls proceed at once; more wait
	// for a free channel. Default [DefaultChannelPool] (4).
	ChannelPool int

	// ConfirmWindow is the maximum number of published but unconfirmed
	// messages per channel: a Publish of a larger batch waits for the oldest
	// confirmations before sending more. Default [DefaultConfirmWindow]
	// (1000 messages).
	ConfirmWindow int

	// DropUnroutable makes Publish count a message that the broker returns
	// as unroutable (no queue is bound to its routing key) as accepted, and
	// log it at Debug level, as django-cqrs and the memory transport do. It
	// applies to broadcasts only: a message aimed at one queue (a retry, a
	// dead letter, a one-queue SYNC) is always reported. Default false:
	// Publish reports every unroutable message with [ErrUnroutable].
	DropUnroutable bool

	// Logger receives connection losses and reconnections (Warn, Info) and
	// unexpected broker behaviour (Error). Default slog.Default().
	Logger *slog.Logger

	// ReconnectBackoff spaces reconnection attempts after a connection or a
	// subscription channel is lost. Default Min [DefaultReconnectMin] (100 ms),
	// Max [DefaultReconnectMax] (15 s).
	ReconnectBackoff Backoff
}

// Backoff is an exponential backoff with jitter: the first retry happens at
// once, the n-th after about Min·2^(n-2), capped at Max, each delay drawn
// uniformly between half and all of it.
type Backoff struct {
	// Min is the base delay. Default [DefaultReconnectMin].
	Min time.Duration
	// Max caps the delay. Default [DefaultReconnectMax]; it must not be
	// smaller than Min.
	Max time.Duration
}

// WithDefaults returns a copy of c with every zero field set to its default.
// A nil c gives the all-default configuration.
func (c *Config) WithDefaults() *Config {
	var out Config
	if c != nil {
		out = *c
	}
	out.URL = cmp.Or(out.URL, DefaultURL)
	out.Exchange = cmp.Or(out.Exchange, DefaultExchange)
	out.Heartbeat = cmp.Or(out.Heartbeat, DefaultHeartbeat)
	out.ConnectionName = cmp.Or(out.ConnectionName, DefaultConnectionName)
	out.ChannelPool = cmp.Or(out.ChannelPool, DefaultChannelPool)
	out.ConfirmWindow = cmp.Or(out.ConfirmWindow, DefaultConfirmWindow)
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	out.ReconnectBackoff.Min = cmp.Or(out.ReconnectBackoff.Min, DefaultReconnectMin)
	out.ReconnectBackoff.Max = cmp.Or(out.ReconnectBackoff.Max, max(DefaultReconnectMax, out.ReconnectBackoff.Min))
	return &out
}

// validate reports every problem of a defaulted config at once.
func (c *Config) validate() error {
	var errs []error
	if strings.ContainsAny(c.URL, " \t\r\n") {
		errs = append(errs, errors.New("rabbitmq: Config.URL contains whitespace: remove it, or percent-encode it in the user name or password"))
	} else if u, err := url.Parse(c.URL); err != nil {
		// The parse error quotes the URL, and a malformed authority can push
		// the password into the "port": never show it.
		errs = append(errs, errors.New("rabbitmq: Config.URL is not a valid URL (details withheld because it may contain a password): "+
			"use amqp://user:password@host:port/vhost and percent-encode reserved characters in the user name and password (net/url.UserPassword)"))
	} else {
		switch u.Scheme {
		case "amqp", "amqps":
		default:
			errs = append(errs, fmt.Errorf("rabbitmq: Config.URL has scheme %q: use amqp:// or amqps://", u.Scheme))
		}
		if u.Scheme == "amqp" && c.TLS != nil {
			errs = append(errs, errors.New("rabbitmq: Config.TLS is set but Config.URL uses amqp://: use amqps:// to connect with TLS, or drop Config.TLS"))
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
				errs = append(errs, errors.New("rabbitmq: Config.URL has an invalid port: use a number between 1 and 65535"))
			}
		}
	}
	if strings.HasPrefix(c.Exchange, "amq.") {
		errs = append(errs, fmt.Errorf("rabbitmq: Config.Exchange %q is in the broker's reserved amq.* namespace: use another name (django-cqrs uses %q)", c.Exchange, DefaultExchange))
	}
	if c.Heartbeat < 0 {
		errs = append(errs, fmt.Errorf("rabbitmq: Config.Heartbeat is negative (%v): use a positive interval or 0 for the default %v", c.Heartbeat, DefaultHeartbeat))
	}
	if c.ChannelPool < 0 {
		errs = append(errs, fmt.Errorf("rabbitmq: Config.ChannelPool is negative (%d): use a positive number of channels or 0 for the default %d", c.ChannelPool, DefaultChannelPool))
	}
	if c.ConfirmWindow < 0 {
		errs = append(errs, fmt.Errorf("rabbitmq: Config.ConfirmWindow is negative (%d): use a positive number of messages or 0 for the default %d", c.ConfirmWindow, DefaultConfirmWindow))
	}
	if c.ReconnectBackoff.Min < 0 || c.ReconnectBackoff.Max < c.ReconnectBackoff.Min {
		errs = append(errs, fmt.Errorf("rabbitmq: Config.ReconnectBackoff is {Min: %v, Max: %v}: use 0 <= Min <= Max (zero values take the defaults %v and %v)",
			c.ReconnectBackoff.Min, c.ReconnectBackoff.Max, DefaultReconnectMin, DefaultReconnectMax))
	}
	return errors.Join(errs...)
}

// redactURL returns raw with its password replaced by "xxxxx", safe for
// errors and logs. An unparseable URL is not shown at all.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	return u.Redacted()
}

// delay returns how long to wait before reconnection attempt number attempt
// (0 is the first, which does not wait).
func (b Backoff) delay(attempt int) time.Duration {
	if attempt <= 0 || b.Max <= 0 {
		return 0
	}
	d := b.Max
	if shift := attempt - 1; shift < 32 {
		if x := b.Min << shift; x > 0 && x < b.Max {
			d = x
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// expirationMillis renders a positive duration as the AMQP expiration
// property: whole milliseconds, at least 1.
func expirationMillis(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

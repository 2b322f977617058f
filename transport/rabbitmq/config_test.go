package rabbitmq_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	var nilCfg *rabbitmq.Config
	for _, c := range []*rabbitmq.Config{nilCfg.WithDefaults(), (&rabbitmq.Config{}).WithDefaults()} {
		if c.URL != rabbitmq.DefaultURL || c.Exchange != "cqrs" || c.Heartbeat != 10*time.Second ||
			c.ConnectionName != "cqrsync" || c.ChannelPool != 4 || c.ConfirmWindow != 1000 ||
			c.Logger == nil || c.DropUnroutable ||
			c.ReconnectBackoff != (rabbitmq.Backoff{Min: 100 * time.Millisecond, Max: 15 * time.Second}) {
			t.Errorf("defaults: %+v", c)
		}
	}
	in := &rabbitmq.Config{Exchange: "x", ChannelPool: 1, ReconnectBackoff: rabbitmq.Backoff{Min: time.Minute}}
	out := in.WithDefaults()
	if out == in || out.Exchange != "x" || out.ChannelPool != 1 || out.ReconnectBackoff.Max != time.Minute {
		t.Errorf("WithDefaults(%+v) = %+v", in, out)
	}
	if in.URL != "" {
		t.Error("WithDefaults modified its receiver")
	}
}

// TestNewValidates: every problem is reported at once, each saying how to
// fix it, before any connection attempt; a password never shows.
func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := rabbitmq.New(context.Background(), &rabbitmq.Config{
		URL:              "http://user:s3cret@host/",
		Exchange:         "amq.topic",
		Heartbeat:        -time.Second,
		ChannelPool:      -1,
		ConfirmWindow:    -1,
		ReconnectBackoff: rabbitmq.Backoff{Min: time.Second, Max: time.Millisecond},
	})
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, want := range []string{"Config.URL has scheme", "Config.Exchange", "Config.Heartbeat", "Config.ChannelPool", "Config.ConfirmWindow", "Config.ReconnectBackoff"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}

	for _, url := range []string{
		"amqp://user:s3cret/host",           // the password lands where the port goes
		"amqp://user:s3cret@host:5672/ x y", // whitespace
		"amqp://user:s3cret@ho%zzst/",       // bad escape
	} {
		_, err := rabbitmq.New(context.Background(), &rabbitmq.Config{URL: url})
		if err == nil {
			t.Errorf("New(%q) succeeded", url)
			continue
		}
		t.Logf("%v", err)
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error for %q shows the password: %v", url, err)
		}
	}

	_, err = rabbitmq.New(context.Background(), &rabbitmq.Config{URL: "amqp://localhost/", TLS: &tls.Config{}})
	if err == nil || !strings.Contains(err.Error(), "amqps://") {
		t.Errorf("TLS with amqp:// = %v, want an error suggesting amqps://", err)
	}
}

// TestNewRedactsCredentials: connection errors name the broker with the
// password replaced, whether the host is unreachable or the password wrong.
func TestNewRedactsCredentials(t *testing.T) {
	testenv.Slow(t, "RabbitMQ answers a wrong password after a delay")
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	_ = ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err = rabbitmq.New(ctx, &rabbitmq.Config{URL: "amqp://someone:s3cret-pw@" + closedAddr + "/"})
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), "someone:xxxxx@"+closedAddr) {
		t.Errorf("unreachable broker: error %q, want the redacted URL and no password", err)
	}

	b := setup(t)
	wrong := strings.Replace(b.url, "@", "-wrong-s3cret-pw@", 1) // append to the password
	if wrong == b.url {
		t.Skip("the broker URL has no credentials to spoil")
	}
	_, err = rabbitmq.New(ctx, b.config(wrong))
	if err == nil {
		t.Fatal("New with a wrong password succeeded")
	}
	t.Logf("wrong password: %v", err)
	if strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), "xxxxx") || !strings.Contains(err.Error(), "password") {
		t.Errorf("wrong password: error %q, want the redacted URL, a hint and no password", err)
	}
}

// TestLogsRedactCredentials: reconnection logs name the broker without the
// password. It needs a user whose password differs from its name, created
// with rabbitmqctl.
func TestLogsRedactCredentials(t *testing.T) {
	testenv.Slow(t, "creates a user with rabbitmqctl")
	t.Parallel()
	b := setup(t)
	ctl := rabbitmqctl(t, "cannot create a test user")
	user, password := newID(), "pw-"+newID()
	run := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, ctl, append([]string{"-q"}, args...)...).CombinedOutput()
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}
	if err := run("add_user", user, password); err != nil {
		skipOrFail(t, "rabbitmqctl add_user: "+err.Error())
	}
	t.Cleanup(func() { _ = run("delete_user", user) })
	if err := run("set_permissions", "-p", "/", user, ".*", ".*", ".*"); err != nil {
		t.Fatalf("rabbitmqctl set_permissions: %v", err)
	}

	p := cqrsynctesting.NewProxy(t, brokerAddr(t, b.url))
	url := strings.Replace(p.URL(t, b.url), strings.Split(strings.TrimPrefix(b.url, "amqp://"), "@")[0], user+":"+password, 1)
	var logs syncBuffer
	tr := b.newTransport(t, url, func(c *rabbitmq.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := testContext(t)
	sub, err := tr.Subscribe(ctx, &transport.SubscribeParams{Queue: b.queue(), CQRSIDs: []string{newID()}})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()

	// Cut while refusing connections, so that reconnection attempts fail
	// and get logged, then let them succeed.
	p.Refuse(true)
	accepted := p.Accepted()
	p.Drop()
	waitFor(t, func() bool { return p.Accepted() >= accepted+4 }, "failed reconnection attempts")
	p.Refuse(false)
	if err := tr.Publish(ctx, batchOf(newID(), 1)); !errors.Is(err, rabbitmq.ErrUnroutable) {
		t.Fatalf("Publish after reconnection = %v", err)
	}
	waitFor(t, func() bool { return strings.Count(logs.String(), "reconnected") >= 2 }, "both connections to log their reconnection")

	out := logs.String()
	if strings.Contains(out, password) {
		t.Fatalf("logs show the password:\n%s", out)
	}
	if !strings.Contains(out, user+":xxxxx@") || !strings.Contains(out, "reconnection failed") {
		t.Fatalf("logs do not name the broker with the redacted URL:\n%s", out)
	}
}

// syncBuffer is a buffer safe for concurrent writers.
type syncBuffer = cqrsynctesting.SyncBuffer

package demo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/internal/broker"
	"github.com/cqrsync/cqrsync/internal/demo"
	"github.com/cqrsync/cqrsync/internal/testenv"
)

// uniqueName returns a run name of the test's own, so that it can look for
// the run's exchange and queue on the broker afterwards.
func uniqueName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "cqrsdemo_test_" + hex.EncodeToString(b)
}

// server is a real broker a test checks for the run's names.
type server struct {
	name    string
	url     func(testing.TB) string
	version string                                        // what the report names
	exists  func(t *testing.T, url, name string) []string // the run's names still on the server
}

// assertCleanedUp fails the test if the run name left anything on the
// server (kfake goes away with everything in it).
func (s server) assertCleanedUp(t *testing.T, url, name string) {
	t.Helper()
	if s.exists == nil {
		return
	}
	if left := s.exists(t, url, name); len(left) > 0 {
		t.Fatalf("left on %s after the run: %v", s.name, left)
	}
}

func rabbitMQ() server {
	return server{name: "rabbitmq", url: testenv.AMQPURL, version: "RabbitMQ ", exists: rabbitLeftovers}
}

func natsServer() server {
	return server{name: "nats", url: testenv.NATSURL, version: "NATS ", exists: natsLeftovers}
}

// rabbitLeftovers returns the run's queues and exchange that still exist.
func rabbitLeftovers(t *testing.T, url, name string) []string {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	defer conn.Close()
	var left []string
	check := func(what string, declare func(*amqp.Channel) error) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("channel: %v", err)
		}
		defer ch.Close()
		err = declare(ch)
		var aerr *amqp.Error
		switch {
		case err == nil:
			left = append(left, what)
		case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
		default:
			t.Fatalf("passive declare of %s: %v", what, err)
		}
	}
	for _, q := range []string{name, "dead_letter_" + name} {
		check("queue "+q, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			return err
		})
	}
	check("exchange "+name, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclarePassive(name, amqp.ExchangeTopic, true, false, false, false, nil)
	})
	return left
}

// natsLeftovers returns the run's streams (and buckets) that still exist.
func natsLeftovers(t *testing.T, url, name string) []string {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var left []string
	names := js.StreamNames(ctx)
	for s := range names.Name() {
		if strings.Contains(s, name) {
			left = append(left, "stream "+s)
		}
	}
	if err := names.Err(); err != nil {
		t.Fatalf("list the NATS streams: %v", err)
	}
	return left
}

// TestDemoOnEveryTransport runs the demo on RabbitMQ, NATS and kfake: the
// replica converges, the report names the broker without its password,
// and the run's exchange and queues are gone afterwards.
func TestDemoOnEveryTransport(t *testing.T) {
	t.Parallel()
	kfake := server{name: "kfake", url: func(testing.TB) string { return "kafka://kfake" }, version: "kfake"}
	for _, s := range []server{rabbitMQ(), natsServer(), kfake} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			url, name := s.url(t), uniqueName(t)
			// While the run lasts, its names are on the server: the check
			// after the run sees them when they are there.
			var during []string
			afterSync := func(context.Context, *sql.DB) error {
				if s.exists != nil {
					during = s.exists(t, url, name)
				}
				return nil
			}
			var out bytes.Buffer
			res, err := demo.Run(t.Context(), demo.Options{Changes: 300, Writers: 2, Workers: 2, Dir: t.TempDir(), Logger: quiet(),
				Transport: url, Name: name, AfterSync: afterSync}, &out)
			if err != nil {
				t.Fatalf("demo on %s: %v\n%s", s.name, err, out.String())
			}
			if !res.Converged() || res.Rows == 0 || res.Consumer.Applied == 0 {
				t.Fatalf("result = %+v\n%s", res, out.String())
			}
			if !strings.Contains(out.String(), "transport: "+s.version) || !strings.Contains(out.String(), name) {
				t.Fatalf("the report does not name the transport (%q) and the run's queue %s:\n%s", s.version, name, out.String())
			}
			if strings.Contains(out.String(), "guest:guest") {
				t.Fatalf("the report shows the broker's password:\n%s", out.String())
			}
			if s.exists != nil && len(during) == 0 {
				t.Fatalf("the run's names %s were not found on %s during the run", name, s.name)
			}
			s.assertCleanedUp(t, url, name)
		})
	}
}

// TestDemoCancelCleansUp cancels a long run once its queue exists (Ctrl-C
// in the command): the run stops and deletes its exchange and queues.
func TestDemoCancelCleansUp(t *testing.T) {
	t.Parallel()
	s := rabbitMQ()
	url, name := s.url(t), uniqueName(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := demo.Run(ctx, demo.Options{Changes: 1_000_000, Writers: 2, Workers: 2, Dir: t.TempDir(), Logger: quiet(),
			Transport: url, Name: name}, &bytes.Buffer{})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(strings.Join(s.exists(t, url, name), " "), "queue "+name) {
		select {
		case err := <-done:
			t.Fatalf("the run ended before it was cancelled: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the run's queue did not appear within 30s")
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled run returned %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop within 30s of the cancel")
	}
	s.assertCleanedUp(t, url, name)
}

// TestDemoBadTransport checks that a URL naming no broker, and a broker
// that does not answer, fail at once with an error that says what to do.
func TestDemoBadTransport(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, url   string
		unsupported bool
		want        []string
	}{
		{name: "unknown scheme", url: "http://127.0.0.1:5672/", unsupported: true,
			want: []string{`scheme "http" is not supported`, "amqp://", "amqps://", "kafka://", "nats://", "in-memory"}},
		{name: "no scheme", url: "127.0.0.1:5672", unsupported: true, want: []string{"names no broker", "amqp://", "nats://"}},
		{name: "rabbitmq down", url: "amqp://guest:secret@127.0.0.1:1/", want: []string{"connect to RabbitMQ at amqp://guest:xxxxx@127.0.0.1:1/"}},
		{name: "nats down", url: "nats://127.0.0.1:1", want: []string{"connect to the NATS server at nats://127.0.0.1:1"}},
		{name: "kafka down", url: "kafka://127.0.0.1:1", want: []string{"kafka: no broker of [127.0.0.1:1] answers"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			var out bytes.Buffer
			_, err := demo.Run(t.Context(), demo.Options{Changes: 10, Dir: t.TempDir(), Logger: quiet(), Transport: c.url}, &out)
			if err == nil {
				t.Fatalf("demo on %s succeeded", c.url)
			}
			if errors.Is(err, broker.ErrUnsupported) != c.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v, want %v", err, !c.unsupported, c.unsupported)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("failing took %v", d)
			}
		})
	}
}

// TestDemoTimeoutSaysWhatIsPending gives the catch-up no time: the error
// must say that the replica did not catch up and what was still pending,
// never report convergence.
func TestDemoTimeoutSaysWhatIsPending(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := demo.Run(t.Context(), demo.Options{Changes: 100, Writers: 2, Workers: 2, Dir: t.TempDir(), Logger: quiet(), Timeout: time.Nanosecond}, &out)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("demo with no time to catch up: %v\n%s", err, out.String())
	}
	for _, w := range []string{"did not catch up within", "still in the outbox", "waiting in queue cqrsdemo_", "in flight in the consumer", "published events settled"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if strings.Contains(out.String(), "converged") {
		t.Fatalf("a timed-out run reports convergence:\n%s", out.String())
	}
}

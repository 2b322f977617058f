package transporttest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

// Compile-time checks that the wrappers below are whole transports.
var (
	_ transport.Subscriber   = (*subscriber)(nil)
	_ transport.Subscription = (*subscription)(nil)
	_ transport.DeadLetters  = (*deadLetters)(nil)
)

// variant is a memory broker that declares caps and refuses what refuse
// names ("nack", "remove"), whatever it declares.
type variant struct {
	caps   transport.Capabilities
	refuse map[string]bool
}

func (v variant) open(tb testing.TB) transporttest.Transport {
	b := memory.NewBroker(nil)
	return transporttest.Transport{
		Publisher:   b.Publisher(),
		Subscriber:  &subscriber{Subscriber: b.Subscriber(), v: v},
		DeadLetters: &deadLetters{DeadLetters: b, v: v},
	}
}

type subscriber struct {
	transport.Subscriber
	v variant
}

func (s *subscriber) Capabilities() transport.Capabilities { return s.v.caps }

func (s *subscriber) Subscribe(ctx context.Context, p *transport.SubscribeParams) (transport.Subscription, error) {
	sub, err := s.Subscriber.Subscribe(ctx, p)
	if err != nil {
		return nil, err
	}
	return &subscription{Subscription: sub, v: s.v}, nil
}

type subscription struct {
	transport.Subscription
	v variant
}

func (s *subscription) Nack(ctx context.Context, requeue bool, ids ...uint64) error {
	if requeue && s.v.refuse["nack"] {
		return fmt.Errorf("variant: nack with requeue: %w", transport.ErrNotSupported)
	}
	return s.Subscription.Nack(ctx, requeue, ids...)
}

type deadLetters struct {
	transport.DeadLetters
	v variant
}

func (d *deadLetters) Capabilities() transport.Capabilities { return d.v.caps }

func (d *deadLetters) ScanDeadLetters(ctx context.Context, dlq string, fn func(context.Context, *transport.Message) (transport.DeadLetterAction, error)) (int, error) {
	if d.v.refuse["remove"] {
		return 0, fmt.Errorf("variant: scan: %w", transport.ErrNotSupported)
	}
	return d.DeadLetters.ScanDeadLetters(ctx, dlq, fn)
}

func (d *deadLetters) PurgeDeadLetters(ctx context.Context, dlq string) (int, error) {
	if d.v.refuse["remove"] {
		return 0, fmt.Errorf("variant: purge: %w", transport.ErrNotSupported)
	}
	return d.DeadLetters.PurgeDeadLetters(ctx, dlq)
}

// logLike is what a log-based broker (Kafka) declares: no per-message
// requeue, dead letters browsed but never removed.
func logLike() transport.Capabilities {
	c := memory.NewBroker(nil).Capabilities()
	c.NackRequeue, c.DeadLetterRemove = false, false
	return c
}

var variants = map[string]variant{
	// Declares removal and per-message requeue but refuses both.
	"overclaims": {caps: memory.NewBroker(nil).Capabilities(), refuse: map[string]bool{"nack": true, "remove": true}},
	// Declares neither but does both.
	"underclaims": {caps: logLike()},
}

// TestLogLikeTransportPasses: a transport that declares it cannot requeue
// one message or remove dead letters, and refuses those operations with
// ErrNotSupported, passes the suite.
func TestLogLikeTransportPasses(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, transporttest.Options{}, variant{caps: logLike(), refuse: map[string]bool{"nack": true, "remove": true}}.open)
}

// TestSuiteRefusesFalseDeclarations runs the suite, in a child process,
// against transports whose Capabilities lie, and checks that it fails and
// says which declaration is wrong.
func TestSuiteRefusesFalseDeclarations(t *testing.T) {
	if name := os.Getenv("TRANSPORTTEST_VARIANT"); name != "" {
		transporttest.Run(t, transporttest.Options{}, variants[name].open)
		return
	}
	t.Parallel()
	for name, want := range map[string][]string{
		"overclaims": {
			"declares Capabilities.NackRequeue but Nack(requeue) returned ErrNotSupported",
			"declares Capabilities.DeadLetterRemove but ScanDeadLetters returned ErrNotSupported",
		},
		"underclaims": {
			"does not declare Capabilities.NackRequeue, but Nack(requeue) returned <nil>",
			"does not declare Capabilities.DeadLetterRemove, but ScanDeadLetters returned",
			"does not declare Capabilities.DeadLetterRemove, but PurgeDeadLetters returned",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSuiteRefusesFalseDeclarations$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "TRANSPORTTEST_VARIANT="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a transport that %s its capabilities:\n%s", name, out)
			}
			for _, w := range want {
				if !strings.Contains(string(out), w) {
					t.Errorf("the suite's output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

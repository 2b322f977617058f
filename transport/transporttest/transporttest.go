package transporttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// Options are the suite's own knobs. What the transport can do is not here:
// the suite reads it from the transport's [transport.Capabilities].
type Options struct {
	// Timeout bounds every wait for something that must happen (a delivery,
	// a closed channel, a reconnection). Tests do not wait that long when the
	// transport works. Default 10s.
	Timeout time.Duration

	// QuietPeriod is how long the suite watches a subscription to conclude
	// that nothing more arrives (a delivery beyond the prefetch window, a
	// message on a queue it was not routed to) where ordering cannot prove
	// it. Default 200ms.
	QuietPeriod time.Duration
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.QuietPeriod <= 0 {
		o.QuietPeriod = 200 * time.Millisecond
	}
	return o
}

// suite is what one test knows of the transport under test: its declared
// capabilities and the suite's options.
type suite struct {
	transport.Capabilities
	Options
}

// Transport is one instance of the transport under test, opened for one test
// by the function given to [Run] or [Benchmark]. That function registers the
// cleanup of what it opened with tb.Cleanup. The suite also closes Publisher
// and Subscriber when the test ends, so their Close must tolerate a second
// call (its error is ignored).
type Transport struct {
	// Publisher publishes to the broker. Required.
	Publisher transport.Publisher
	// Subscriber subscribes on the same broker. Required.
	Subscriber transport.Subscriber
	// DeadLetters manages the dead-letter queues of the same broker.
	// Required when the capabilities declare DeadLetterBrowse; when set, it
	// must declare the same capabilities as Subscriber.
	DeadLetters transport.DeadLetters

	// CutConnections, if not nil, cuts every connection this Transport holds,
	// at once, as a broker restart or a network failure would
	// (rabbitmqctl close_connection, a TCP proxy dropping its links, closing
	// the client's sockets underneath it), and returns once they are cut. It
	// must not cut other Transports' connections: the other tests run in
	// parallel. After a cut, a publisher may fail for a while and must then
	// publish again; a subscription either recovers by itself or ends with a
	// non-nil Err, after which the suite subscribes again. The
	// CutConnections test is skipped when it is nil.
	CutConnections func(tb testing.TB)

	// AdvanceClock, if not nil, moves forward by d the clock by which the
	// transport expires messages (a fake clock). When nil, the suite waits d
	// of real time where it needs messages to expire.
	AdvanceClock func(d time.Duration)

	// DeleteQueue, if not nil, is called when a test ends for every queue
	// and dead-letter queue it declared, so that a shared broker does not
	// collect the suite's queues. Errors are logged, not failed.
	DeleteQueue func(ctx context.Context, queue string) error
}

// NewTestID returns a fresh identifier, "cqrsynctest_" and 12 hex digits,
// usable as or in a queue name or CQRS ID (it holds no '.', '*' or '#').
// Tests derive all their names from one, so that parallel tests and parallel
// runs on a shared broker never see each other's messages.
func NewTestID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand.Read panics rather than return an error)
	return "cqrsynctest_" + hex.EncodeToString(b[:])
}

// test is one conformance test.
type test struct {
	name string
	// needs returns why the test cannot run against this transport, or "".
	needs func(b *bundle) string
	run   func(t *testing.T, b *bundle)
}

func tests() []test {
	return []test{
		{name: "PublishBatch", run: testPublishBatch},
		{name: "Broadcast", run: testBroadcast},
		{name: "DirectRoute", run: testDirectRoute},
		{name: "DeliveryFields", run: testDeliveryFields},
		{name: "BodyBytes", run: testBodyBytes},
		{name: "Unroutable", run: testUnroutable},
		{name: "ConcurrentPublishers", run: testConcurrentPublishers},
		{name: "PerQueueOrder", needs: needCap("PerQueueOrder", func(c transport.Capabilities) bool { return c.PerQueueOrder }), run: testPerQueueOrder},
		{name: "AckRemoves", run: testAckRemoves},
		{name: "NackRequeue", needs: needCap("NackRequeue", func(c transport.Capabilities) bool { return c.NackRequeue }), run: testNackRequeue},
		{name: "NackDrop", run: testNackDrop},
		{name: "DelayedRedelivery", needs: needCap("DelayedRedelivery", func(c transport.Capabilities) bool { return c.DelayedRedelivery }), run: testDelayedRedelivery},
		{name: "CloseRedelivers", run: testCloseRedelivers},
		{name: "ContextCancelRedelivers", run: testContextCancelRedelivers},
		{name: "Prefetch", needs: needCap("Prefetch", func(c transport.Capabilities) bool { return c.Prefetch }), run: testPrefetch},
		{name: "CompetingSubscriptions", run: testCompetingSubscriptions},
		{name: "Durable", needs: needCap("Durable", func(c transport.Capabilities) bool { return c.Durable }), run: testDurable},
		{name: "Expiration", needs: needCap("Expiration and Durable", func(c transport.Capabilities) bool { return c.Expiration && c.Durable }), run: testExpiration},
		{name: "DeadLetterBrowse", needs: needCap("DeadLetterBrowse", func(c transport.Capabilities) bool { return c.DeadLetterBrowse }), run: testDeadLetterBrowse},
		{name: "DeadLetters", needs: needCap("DeadLetterBrowse and DeadLetterRemove", func(c transport.Capabilities) bool { return c.DeadLetterBrowse && c.DeadLetterRemove }), run: testDeadLetters},
		{name: "DeadLetterQueueName", needs: needCap("DeadLetterBrowse", func(c transport.Capabilities) bool { return c.DeadLetterBrowse }), run: testDeadLetterQueueName},
		{name: "IntoQueue", needs: needCap("DirectToQueue and DeadLetterBrowse", func(c transport.Capabilities) bool { return c.DirectToQueue && c.DeadLetterBrowse }), run: testIntoQueue},
		{name: "NotSupported", run: testNotSupported},
		{name: "PublisherClose", run: testPublisherClose},
		{name: "SubscriberClose", run: testSubscriberClose},
		{name: "SubscribeValidates", run: testSubscribeValidates},
		{name: "CutConnections", needs: needCut, run: testCutConnections},
		{name: "Inspector", needs: needInspector, run: testInspector},
	}
}

func needCap(name string, has func(transport.Capabilities) bool) func(b *bundle) string {
	return func(b *bundle) string {
		if has(b.f.Capabilities) {
			return ""
		}
		return "the transport does not declare Capabilities." + name
	}
}

func needCut(b *bundle) string {
	if b.tr.CutConnections == nil {
		return "Transport.CutConnections is nil"
	}
	return ""
}

// Run runs the conformance suite as parallel subtests of t. newTransport
// opens a fresh [Transport] for each subtest; see Transport for what it must
// provide and clean up. The suite tests every capability the transport
// declares in its Capabilities (a test failing, or an operation returning
// [transport.ErrNotSupported], fails the suite), skips with the reason the
// tests of capabilities it does not declare, and checks that the
// operations of those return ErrNotSupported.
func Run(t *testing.T, opts Options, newTransport func(tb testing.TB) Transport) {
	o := opts.withDefaults()
	for _, tc := range tests() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, o, newTransport)
			if tc.needs != nil {
				if reason := tc.needs(b); reason != "" {
					t.Skip(reason)
				}
			}
			tc.run(t, b)
		})
	}
}

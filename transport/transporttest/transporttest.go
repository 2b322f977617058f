package transporttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// Features declares what the transport under test can do. The suite skips,
// with the reason, the tests of capabilities a transport does not declare;
// it never probes for them.
type Features struct {
	// PerQueueOrder: messages published to one queue in one Publish call,
	// and in successive Publish calls from one goroutine, whether by
	// broadcast or direct route, are delivered in that order when nothing is
	// nacked or redelivered. Without it the suite checks sets, not sequences,
	// and uses QuietPeriod to check absences.
	PerQueueOrder bool

	// Durable: a queue declared by a Subscribe keeps the messages routed to
	// it while no subscription is open, and delivers them to the next one.
	Durable bool

	// DeadLetters: Transport.DeadLetters is set and implements
	// [transport.DeadLetters] on the dead-letter queues Subscribe declares.
	DeadLetters bool

	// Expiration: the transport drops a message whose
	// [transport.Message.Expiration] passed while it waited in a queue. The
	// test also needs Durable.
	Expiration bool

	// Prefetch: a subscription never has more than
	// [transport.SubscribeParams.Prefetch] unsettled deliveries outstanding.
	Prefetch bool

	// ReportsUnroutable: Publish reports a message that no queue is bound to
	// receive in [transport.PublishError.Unroutable] (RabbitMQ with
	// mandatory=true), after accepting the batch's other messages.
	// Without it, such a message is dropped silently and Publish returns
	// nil, as a broker does without mandatory. Either way it reaches no
	// queue.
	ReportsUnroutable bool

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

func (f Features) withDefaults() Features {
	if f.Timeout <= 0 {
		f.Timeout = 10 * time.Second
	}
	if f.QuietPeriod <= 0 {
		f.QuietPeriod = 200 * time.Millisecond
	}
	return f
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
	// Required when Features.DeadLetters is set, otherwise ignored.
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
		{name: "PerQueueOrder", needs: needFeature("PerQueueOrder", func(f Features) bool { return f.PerQueueOrder }), run: testPerQueueOrder},
		{name: "AckRemoves", run: testAckRemoves},
		{name: "NackRequeue", run: testNackRequeue},
		{name: "NackDrop", run: testNackDrop},
		{name: "CloseRedelivers", run: testCloseRedelivers},
		{name: "ContextCancelRedelivers", run: testContextCancelRedelivers},
		{name: "Prefetch", needs: needFeature("Prefetch", func(f Features) bool { return f.Prefetch }), run: testPrefetch},
		{name: "CompetingSubscriptions", run: testCompetingSubscriptions},
		{name: "Durable", needs: needFeature("Durable", func(f Features) bool { return f.Durable }), run: testDurable},
		{name: "Expiration", needs: needFeature("Expiration and Durable", func(f Features) bool { return f.Expiration && f.Durable }), run: testExpiration},
		{name: "DeadLetters", needs: needFeature("DeadLetters", func(f Features) bool { return f.DeadLetters }), run: testDeadLetters},
		{name: "DeadLetterQueueName", needs: needFeature("DeadLetters", func(f Features) bool { return f.DeadLetters }), run: testDeadLetterQueueName},
		{name: "IntoQueue", needs: needFeature("DeadLetters", func(f Features) bool { return f.DeadLetters }), run: testIntoQueue},
		{name: "PublisherClose", run: testPublisherClose},
		{name: "SubscriberClose", run: testSubscriberClose},
		{name: "SubscribeValidates", run: testSubscribeValidates},
		{name: "CutConnections", needs: needCut, run: testCutConnections},
	}
}

func needFeature(name string, has func(Features) bool) func(b *bundle) string {
	return func(b *bundle) string {
		if has(b.f) {
			return ""
		}
		return "the transport does not declare Features." + name
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
// provide and clean up.
func Run(t *testing.T, features Features, newTransport func(tb testing.TB) Transport) {
	f := features.withDefaults()
	for _, tc := range tests() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, f, newTransport)
			if tc.needs != nil {
				if reason := tc.needs(b); reason != "" {
					t.Skip(reason)
				}
			}
			tc.run(t, b)
		})
	}
}

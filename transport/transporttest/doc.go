// Package transporttest is the conformance suite every cqrsync transport
// passes, and a benchmark to compare them. A transport's test calls [Run]
// with the suite's [Options] and a function that opens a fresh [Transport]
// for each test; what the transport can do, the suite reads from its
// [transport.Capabilities]:
//
//	func TestConformance(t *testing.T) {
//		t.Parallel()
//		transporttest.Run(t, transporttest.Options{}, func(tb testing.TB) transporttest.Transport {
//			conn := dial(tb) // closed by tb.Cleanup
//			return transporttest.Transport{
//				Publisher: conn.Publisher(), Subscriber: conn.Subscriber(), DeadLetters: conn,
//				CutConnections: func(tb testing.TB) { conn.KillConnections(tb) },
//			}
//		})
//	}
//
//	func BenchmarkTransport(b *testing.B) { transporttest.Benchmark(b, newTransport) }
//
// # What the suite checks
//
// Publishing batches and receiving all of them; broadcast to every bound
// queue and direct routes to one queue; the CQRSID, Queue, routing key,
// headers and exact body bytes of deliveries; ack, nack with and without
// requeue, redelivery of unsettled messages when a subscription closes or its
// context ends; prefetch windows; competing subscriptions on one queue;
// concurrent publishers; per-queue order; durable queues; dead-letter
// browsing, scans and purges; IntoQueue; message expiration; Close semantics
// and ErrClosed; parameter validation; and recovery from cut connections
// with nothing lost. The tests of capabilities a transport does not declare
// are skipped with the reason, and the operations of those capabilities
// must return [transport.ErrNotSupported]; a declared capability whose
// operation returns ErrNotSupported fails the suite.
//
// # Running against a shared broker
//
// Every test runs in parallel with the others and uses its own queue names
// and CQRS IDs (see [NewTestID]), so the suite can run against one real
// broker shared with other test runs. Waits are bounded by
// [Options.Timeout] and end as soon as the awaited condition holds; the only
// fixed waits are [Options.QuietPeriod], to check that something does not
// happen where ordering cannot prove it, and message expiration on
// transports without a controllable clock.
package transporttest

package transporttest_test

import (
	"testing"

	"github.com/cqrsync/cqrsync/transport/memory"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

// A transport's test runs the conformance suite with a fresh connection per
// test; the suite reads what to check from the transport's Capabilities.
// (Not run: a suite runs inside a test.)
func ExampleRun() {
	_ = func(t *testing.T) { // func TestConformance(t *testing.T)
		t.Parallel()
		transporttest.Run(t, transporttest.Options{}, func(tb testing.TB) transporttest.Transport {
			broker := memory.NewBroker(nil)
			return transporttest.Transport{
				Publisher: broker.Publisher(), Subscriber: broker.Subscriber(), DeadLetters: broker,
				CutConnections: func(testing.TB) { broker.CutConnections() },
			}
		})
	}
}

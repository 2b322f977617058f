package kafka_test

import (
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/kafka"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

var (
	_ transport.Publisher   = (*kafka.Transport)(nil)
	_ transport.Subscriber  = (*kafka.Transport)(nil)
	_ transport.DeadLetters = (*kafka.Transport)(nil)
)

// suiteOptions gives the suite's timing checks (a delayed redelivery must
// come after the message published behind it) and waits more room than the
// defaults (200 ms, 10 s): kfake runs in the test process and shares its
// CPU with the race detector and the other parallel subtests.
var suiteOptions = transporttest.Options{QuietPeriod: time.Second, Timeout: 30 * time.Second}

// TestConformance runs the shared transport suite against kfake, an
// in-process Kafka cluster per subtest, whose connections CutConnections
// closes.
func TestConformance(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, suiteOptions, newSuiteTransport)
}

// TestConformancePerModel runs the suite with a broadcast topic per model.
func TestConformancePerModel(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, suiteOptions, func(tb testing.TB) transporttest.Transport {
		return suiteTransport(tb, true)
	})
}

func newSuiteTransport(tb testing.TB) transporttest.Transport { return suiteTransport(tb, false) }

func suiteTransport(tb testing.TB, perModel bool) transporttest.Transport {
	c := newCluster(tb)
	cfg := c.config()
	cfg.TopicPerModel = perModel
	tr := c.open(tb, cfg)
	return transporttest.Transport{
		Publisher: tr, Subscriber: tr, DeadLetters: tr,
		CutConnections: func(testing.TB) { c.Cut() },
	}
}

// BenchmarkTransport is the shared transport benchmark on kfake.
func BenchmarkTransport(b *testing.B) { transporttest.Benchmark(b, newSuiteTransport) }

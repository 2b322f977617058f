package nats_test

import (
	"testing"

	"github.com/cqrsync/cqrsync/transport/transporttest"
)

// BenchmarkTransport runs the shared transport benchmark against the real
// server (one partition, no proxy).
func BenchmarkTransport(b *testing.B) {
	transporttest.Benchmark(b, func(tb testing.TB) transporttest.Transport {
		bb := setup(tb)
		tr := open(tb, bb.config(bb.url))
		return transporttest.Transport{Publisher: tr, Subscriber: tr, DeadLetters: tr}
	})
}

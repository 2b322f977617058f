package nats_test

import (
	"context"
	"testing"

	"github.com/cqrsync/cqrsync/transport/transporttest"
)

// TestConformance runs the shared transport suite against the real server
// with one partition. Every subtest gets its own exchange and a TCP proxy
// in front of the server, so that CutConnections cuts that transport's
// connection only.
func TestConformance(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, transporttest.Options{}, func(tb testing.TB) transporttest.Transport {
		return newSuiteTransport(tb, 1)
	})
}

// TestConformancePartitioned runs the suite with four partitions: no
// per-queue order across keys, everything else the same.
func TestConformancePartitioned(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, transporttest.Options{}, func(tb testing.TB) transporttest.Transport {
		return newSuiteTransport(tb, 4)
	})
}

func newSuiteTransport(tb testing.TB, partitions int) transporttest.Transport {
	b := setup(tb)
	p, u := b.proxied(tb)
	cfg := b.config(u)
	cfg.Partitions = partitions
	tr := open(tb, cfg)
	// DeleteQueue runs after the suite closed tr: a second transport does it.
	adminCfg := b.config(b.url)
	adminCfg.Partitions = partitions
	admin := open(tb, adminCfg)
	return transporttest.Transport{
		Publisher:      tr,
		Subscriber:     tr,
		DeadLetters:    tr,
		CutConnections: func(testing.TB) { p.Drop() },
		DeleteQueue:    func(ctx context.Context, q string) error { return admin.DeleteQueue(ctx, q) },
	}
}

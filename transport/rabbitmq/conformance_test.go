package rabbitmq_test

import (
	"context"
	"testing"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/transport/transporttest"
)

// TestConformance runs the shared transport suite against the real broker.
// Every subtest gets its own exchange and a TCP proxy in front of the broker,
// so that CutConnections cuts that transport's connections only.
func TestConformance(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, transporttest.Options{}, newConformanceTransport)
}

func newConformanceTransport(tb testing.TB) transporttest.Transport {
	return newSuiteTransport(tb, true)
}

// newSuiteTransport opens a transport for the shared suite or benchmark, on
// its own exchange, through a cuttable proxy when viaProxy.
func newSuiteTransport(tb testing.TB, viaProxy bool) transporttest.Transport {
	b := setup(tb)
	url := b.url
	var p *cqrsynctesting.Proxy
	if viaProxy {
		p = cqrsynctesting.NewProxy(tb, brokerAddr(tb, b.url))
		url = p.URL(tb, b.url)
	}
	tr := b.newTransport(tb, url, nil)
	st := transporttest.Transport{
		Publisher:   tr,
		Subscriber:  tr,
		DeadLetters: tr,
		DeleteQueue: func(ctx context.Context, queue string) error {
			ch, err := b.conn.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			_, err = ch.QueueDelete(queue, false, false, false)
			return err
		},
	}
	if p != nil {
		st.CutConnections = func(testing.TB) { p.Drop() }
	}
	return st
}

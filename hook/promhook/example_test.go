package promhook_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/promhook"
)

// Example registers the hooks and shows what a master's capture and a
// consumer's batch record. In a service, pass h as MasterConfig.Hooks,
// outbox.Config.Hooks and ConsumerConfig.Hooks, set Config.Outbox to
// outbox.StatsFunc(db) and Config.Broker to the transport, and serve
// h.Handler() (or your registry) on /metrics.
func Example() {
	h := promhook.New(nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)

	ctx := context.Background()
	h.OnCapture(ctx, hook.Capture{CQRSID: "account", Signal: "SAVE", Rows: 3})
	h.OnApply(ctx, hook.Apply{CQRSID: "account", Size: 3, Applied: 2, Stale: 1, Duration: 4 * time.Millisecond})
	h.OnLag(ctx, hook.Lag{CQRSID: "account", Lag: 120 * time.Millisecond})

	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			switch {
			case m.GetCounter() != nil && m.GetCounter().GetValue() > 0:
				fmt.Printf("%s{%s} %v\n", f.GetName(), strings.Join(labels, ","), m.GetCounter().GetValue())
			case m.GetHistogram() != nil && m.GetHistogram().GetSampleCount() > 0:
				fmt.Printf("%s{%s} count %d\n", f.GetName(), strings.Join(labels, ","), m.GetHistogram().GetSampleCount())
			}
		}
	}
	// Output:
	// cqrsync_apply_batch_size{cqrs_id=account} count 1
	// cqrsync_apply_duration_seconds{cqrs_id=account} count 1
	// cqrsync_captured_events_total{cqrs_id=account,signal=SAVE} 3
	// cqrsync_consumer_events_total{cqrs_id=account,outcome=applied} 2
	// cqrsync_consumer_events_total{cqrs_id=account,outcome=stale} 1
	// cqrsync_lag_seconds{cqrs_id=account} count 1
}

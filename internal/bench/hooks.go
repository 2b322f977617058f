package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/otelhook"
	"github.com/cqrsync/cqrsync/hook/promhook"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
)

// observers are the hooks --hooks turns on, as a service would run them:
// Prometheus metrics in a registry gathered every second (the outbox
// backlog and queue depths included), OpenTelemetry metrics collected every
// second, and a span per capture, publish and apply, batched and exported
// (to nowhere: the export's network cost is the collector's, not
// cqrsync's).
type observers struct {
	hooks  hook.Hooks
	prop   hook.Propagator
	reg    *prometheus.Registry
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	reader *sdkmetric.ManualReader
	otel   *otelhook.Hooks

	active atomic.Bool // gather only while the pipeline runs with the hooks
	stop   chan struct{}
	wg     sync.WaitGroup
}

// discardExporter drops the spans it is given.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

func (p *pipeline) newObservers() (*observers, error) {
	o := &observers{reg: prometheus.NewRegistry(), reader: sdkmetric.NewManualReader(), stop: make(chan struct{})}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(p.opts.HooksSample))))
	o.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	stats := outbox.StatsFunc(databasesql.New(p.masterDB, p.mdb.dialect))
	queues := []string{p.queue, "dead_letter_" + p.queue}
	var broker transport.Inspector // queue depths, where the transport tells them
	if insp, ok := p.subTr.(transport.Inspector); ok {
		broker = insp
	}
	prom := promhook.New(&promhook.Config{Outbox: stats, Broker: broker, Queues: queues})
	if err := o.reg.Register(prom); err != nil {
		return nil, err
	}
	var err error
	o.otel, err = otelhook.New(&otelhook.Config{TracerProvider: o.tp, MeterProvider: o.mp, Outbox: stats, Broker: broker, Queues: queues})
	if err != nil {
		return nil, err
	}
	o.hooks, o.prop = hook.Join(prom, o.otel), o.otel.Propagator()
	o.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-o.stop:
				return
			case <-tick.C:
			}
			if !o.active.Load() {
				continue
			}
			if _, err := o.reg.Gather(); err != nil {
				p.opts.Logger.Warn("bench: gather Prometheus metrics", "error", err)
			}
			var rm metricdata.ResourceMetrics
			if err := o.reader.Collect(context.Background(), &rm); err != nil {
				p.opts.Logger.Warn("bench: collect OpenTelemetry metrics", "error", err)
			}
		}
	})
	o.active.Store(p.opts.Hooks)
	return o, nil
}

func (o *observers) close() error {
	close(o.stop)
	o.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(o.otel.Close(), o.tp.Shutdown(ctx), o.mp.Shutdown(ctx))
}

// rewire stops the relay and the consumer, rebuilds master, relay and
// consumer with the hooks on or off, and starts them again on the same
// databases, table and queue.
func (p *pipeline) rewire(ctx context.Context, on bool) error {
	if err := errors.Join(p.stopConsumer(), p.stopRelay()); err != nil {
		return err
	}
	var obs *observers
	if on {
		obs = p.obs
	}
	p.obs.active.Store(on)
	if err := p.build(obs); err != nil {
		return err
	}
	if err := p.startConsumer(ctx); err != nil {
		return err
	}
	return p.startRelay(ctx)
}

// HooksComparison is the throughput with the Prometheus and OpenTelemetry
// hooks off and on, in alternating rounds of the same run (--hooks-rounds).
type HooksComparison struct {
	Changes int          `json:"changes_per_round"`
	Sample  float64      `json:"trace_sample"`
	Rounds  []HooksRound `json:"rounds"`
	// Median end-to-end and master commit rates of each side.
	EndToEndOff     float64 `json:"end_to_end_off_per_s"`
	EndToEndOn      float64 `json:"end_to_end_on_per_s"`
	MasterCommitOff float64 `json:"master_commit_off_per_s"`
	MasterCommitOn  float64 `json:"master_commit_on_per_s"`
	// Overhead is 1 − on/off of the median end-to-end rates: 0.03 is 3%
	// fewer changes per second with the hooks on. MasterOverhead is the same
	// of the master commit rates.
	Overhead       float64 `json:"overhead"`
	MasterOverhead float64 `json:"master_overhead"`
	// CPUPerChangeOff and On are the medians of this process's CPU time
	// (user + system: writers, relay, consumer, hooks) per change, in µs;
	// CPUOverhead is on/off − 1. Steadier than the rates on a shared
	// machine: other processes' load moves the rates, less the CPU spent.
	CPUPerChangeOff float64 `json:"cpu_us_per_change_off"`
	CPUPerChangeOn  float64 `json:"cpu_us_per_change_on"`
	CPUOverhead     float64 `json:"cpu_overhead"`
}

// HooksRound is one throughput round.
type HooksRound struct {
	Hooks        bool    `json:"hooks"`
	EndToEnd     float64 `json:"end_to_end_per_s"`
	MasterCommit float64 `json:"master_commit_per_s"`
	CPUPerChange float64 `json:"cpu_us_per_change"`
}

// compareHooks runs a warm-up round, then 2 × rounds throughput rounds of
// n changes, hooks off and on in the order off, on, on, off, off, on, ….
func (p *pipeline) compareHooks(ctx context.Context, n, rounds int) (*HooksComparison, error) {
	res := &HooksComparison{Changes: n, Sample: p.opts.HooksSample}
	// A warm-up round, not counted: the first round after the start runs
	// on cold caches and connections.
	p.logf("hooks: warm-up round of %d changes, hooks off, not counted", max(n/2, 1))
	if _, err := p.throughput(ctx, max(n/2, 1)); err != nil {
		return res, fmt.Errorf("bench: hooks warm-up round: %w", err)
	}
	var e2e, commit, cpus [2][]float64 // [off, on]
	for i := range 2 * rounds {
		// off, on, on, off, off, on, …: each side runs as often first as
		// second in a pair, so a drift of the machine's load favours neither.
		on := (i+1)/2%2 == 1
		if err := p.rewire(ctx, on); err != nil {
			return res, err
		}
		p.logf("hooks: round %d of %d, hooks %s", i+1, 2*rounds, onOff(on))
		t, err := p.throughput(ctx, n)
		if err != nil {
			return res, fmt.Errorf("bench: hooks round %d (%s): %w", i+1, onOff(on), err)
		}
		cpu := math.Round(t.Usage.CPUSeconds/float64(max(t.Changes, 1))*1e7) / 10
		res.Rounds = append(res.Rounds, HooksRound{Hooks: on, EndToEnd: t.EndToEndRate, MasterCommit: t.MasterCommitRate, CPUPerChange: cpu})
		side := 0
		if on {
			side = 1
		}
		e2e[side] = append(e2e[side], t.EndToEndRate)
		commit[side] = append(commit[side], t.MasterCommitRate)
		cpus[side] = append(cpus[side], cpu)
	}
	res.CPUPerChangeOff, res.CPUPerChangeOn = median(cpus[0]), median(cpus[1])
	res.CPUOverhead = -overhead(res.CPUPerChangeOff, res.CPUPerChangeOn)
	res.EndToEndOff, res.EndToEndOn = median(e2e[0]), median(e2e[1])
	res.MasterCommitOff, res.MasterCommitOn = median(commit[0]), median(commit[1])
	res.Overhead = overhead(res.EndToEndOff, res.EndToEndOn)
	res.MasterOverhead = overhead(res.MasterCommitOff, res.MasterCommitOn)
	return res, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func overhead(off, on float64) float64 {
	if off <= 0 {
		return 0
	}
	return float64(int((1-on/off)*10000+0.5)) / 10000
}

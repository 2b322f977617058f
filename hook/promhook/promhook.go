// Package promhook exports cqrsync's figures as Prometheus metrics
// (client_golang). A [*Hooks] is both a [hook.Hooks], given to a master,
// relay and consumer (MasterConfig.Hooks, outbox.Config.Hooks,
// ConsumerConfig.Hooks), and a [prometheus.Collector] to register; at every
// scrape it also reads the outbox backlog and the broker's queue depths,
// when configured to.
//
// It is opt-in: cqrsync itself does not link client_golang. The metrics, all
// prefixed "cqrsync_":
//
//	captured_events_total{cqrs_id,signal}        counter   rows captured by successful capture calls
//	capture_errors_total{cqrs_id,signal}         counter   capture calls that failed
//	outbox_backlog_rows                          gauge     events waiting in the outbox (read at scrape)
//	outbox_oldest_age_seconds                    gauge     age of the oldest waiting event (read at scrape)
//	relay_claim_errors_total                     counter   outbox claims that failed
//	relay_published_events_total                 counter   events the broker confirmed
//	relay_publish_failures_total                 counter   events the broker did not take (sent again later)
//	relay_confirm_duration_seconds               histogram publish of a batch until the broker confirmed it
//	consumer_events_total{cqrs_id,outcome}       counter   events applied or dropped; outcome applied|stale|duplicate|tombstoned|ignored
//	consumer_retries_total{cqrs_id}              counter   events scheduled for another try
//	consumer_dead_letters_total{cqrs_id}         counter   events moved to the dead-letter queue
//	apply_batch_size{cqrs_id}                    histogram events of the model per applied batch
//	apply_duration_seconds{cqrs_id}              histogram the batch's transaction, commit included
//	apply_errors_total{cqrs_id}                  counter   batches that failed (applied again one by one)
//	lag_seconds{cqrs_id}                         histogram capture on the master to commit on the replica
//	broker_queue_depth{queue}                    gauge     messages ready in the queue (read at scrape)
//	scrape_errors_total{source}                  counter   scrape-time reads that failed (outbox, broker)
package promhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/observe"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// Config configures [New]. The zero value is valid: hooks only, nothing read
// at scrape.
type Config struct {
	// Outbox, when set, is called at every scrape to read the outbox
	// backlog: outbox.StatsFunc(db), or a relay's Stats method.
	Outbox func(context.Context) (*sqldialect.OutboxStats, error)
	// Broker, when set, is asked at every scrape for the depth of Queues
	// (a transport that implements transport.Inspector, such as
	// *rabbitmq.Transport).
	Broker transport.Inspector
	// Queues are the queues whose depth is exported: the replica's queue
	// and its dead-letter queue, typically.
	Queues []string
	// ScrapeTimeout bounds the reads of one scrape. Default 5 s.
	ScrapeTimeout time.Duration
	// ConstLabels are added to every metric (e.g. {"service": "billing"}).
	ConstLabels prometheus.Labels
}

// Hooks records cqrsync's figures as Prometheus metrics. It is safe for
// concurrent use.
type Hooks struct {
	src observe.Sources

	captured, captureErrors                   *counters
	claimErrors                               prometheus.Counter
	published, publishFailures                prometheus.Counter
	confirm                                   prometheus.Histogram
	events, retries, deadLetters, applyErrors *counters
	batchSize, applyDuration, lag             *histograms
	scrapeErrors                              *prometheus.CounterVec

	backlogDesc, oldestDesc, depthDesc *prometheus.Desc
}

var (
	_ hook.Hooks           = (*Hooks)(nil)
	_ prometheus.Collector = (*Hooks)(nil)
)

// New returns the hooks; register them with a prometheus.Registerer
// (prometheus.MustRegister(h), or [Hooks.Handler] for a registry of their
// own). cfg may be nil.
func New(cfg *Config) *Hooks {
	if cfg == nil {
		cfg = &Config{}
	}
	cl := cfg.ConstLabels
	name := func(n string) string { return "cqrsync_" + n }
	counterVec := func(n, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name(n), Help: help, ConstLabels: cl}, labels)
	}
	counter := func(n, help string, labels ...string) *counters {
		return &counters{vec: counterVec(n, help, labels...)}
	}
	histogramVec := func(n, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name(n), Help: help, Buckets: buckets, ConstLabels: cl}, labels)
	}
	histogram := func(n, help string, buckets []float64, labels ...string) *histograms {
		return &histograms{vec: histogramVec(n, help, buckets, labels...)}
	}
	return &Hooks{
		src:             observe.Sources{Outbox: cfg.Outbox, Broker: cfg.Broker, Queues: cfg.Queues, Timeout: cfg.ScrapeTimeout},
		captured:        counter("captured_events_total", "Rows captured by successful capture calls of the master.", "cqrs_id", "signal"),
		captureErrors:   counter("capture_errors_total", "Capture calls of the master that failed.", "cqrs_id", "signal"),
		claimErrors:     counterVec("relay_claim_errors_total", "Outbox claims of the relay that failed.").WithLabelValues(),
		published:       counterVec("relay_published_events_total", "Events the relay published and the broker confirmed.").WithLabelValues(),
		publishFailures: counterVec("relay_publish_failures_total", "Events the broker did not take; they stay in the outbox and are sent again.").WithLabelValues(),
		confirm:         histogramVec("relay_confirm_duration_seconds", "Time from a batch's publish to the broker's confirmation.", observe.DurationBuckets).WithLabelValues().(prometheus.Histogram),
		events:          counter("consumer_events_total", "Events of committed batches by outcome: applied, or dropped as stale, duplicate, tombstoned or ignored.", "cqrs_id", "outcome"),
		retries:         counter("consumer_retries_total", "Events the consumer scheduled for another try.", "cqrs_id"),
		deadLetters:     counter("consumer_dead_letters_total", "Events the consumer moved to the dead-letter queue.", "cqrs_id"),
		batchSize:       histogram("apply_batch_size", "Events of one model in one batch applied in one transaction.", observe.SizeBuckets, "cqrs_id"),
		applyDuration:   histogram("apply_duration_seconds", "Duration of a batch's transaction, commit included.", observe.DurationBuckets, "cqrs_id"),
		applyErrors:     counter("apply_errors_total", "Batches whose transaction failed (their events are applied again one by one).", "cqrs_id"),
		lag:             histogram("lag_seconds", "End-to-end lag: from the event's capture on the master (cqrs_updated) to its batch's commit on the replica.", observe.LagBuckets, "cqrs_id"),
		scrapeErrors:    counterVec("scrape_errors_total", "Scrape-time reads that failed, by source (outbox, broker).", "source"),
		backlogDesc:     prometheus.NewDesc(name("outbox_backlog_rows"), "Events waiting in the outbox, read at scrape.", nil, cl),
		oldestDesc:      prometheus.NewDesc(name("outbox_oldest_age_seconds"), "Age of the oldest event waiting in the outbox (0 when empty), read at scrape.", nil, cl),
		depthDesc:       prometheus.NewDesc(name("broker_queue_depth"), "Messages ready in the broker queue, read at scrape.", []string{"queue"}, cl),
	}
}

func (h *Hooks) collectors() []prometheus.Collector {
	return []prometheus.Collector{h.captured.vec, h.captureErrors.vec, h.claimErrors, h.published, h.publishFailures, h.confirm,
		h.events.vec, h.retries.vec, h.deadLetters.vec, h.batchSize.vec, h.applyDuration.vec, h.applyErrors.vec, h.lag.vec, h.scrapeErrors}
}

// counters is a counter vector labelled by cqrs_id and at most one more
// label, with its series cached.
type counters struct {
	vec   *prometheus.CounterVec
	cache observe.Cache[prometheus.Counter]
}

func (c *counters) at(cqrsID, label string) prometheus.Counter {
	return c.cache.Get(observe.Key{CQRSID: cqrsID, Label: label}, func(k observe.Key) prometheus.Counter {
		return c.vec.WithLabelValues(values(k)...)
	})
}

// histograms is a histogram vector labelled by cqrs_id, with its series
// cached.
type histograms struct {
	vec   *prometheus.HistogramVec
	cache observe.Cache[prometheus.Observer]
}

func (c *histograms) at(cqrsID string) prometheus.Observer {
	return c.cache.Get(observe.Key{CQRSID: cqrsID}, func(k observe.Key) prometheus.Observer {
		return c.vec.WithLabelValues(values(k)...)
	})
}

func values(k observe.Key) []string {
	if k.Label == "" {
		return []string{k.CQRSID}
	}
	return []string{k.CQRSID, k.Label}
}

// Describe sends the metrics' descriptions (prometheus.Collector).
func (h *Hooks) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range h.collectors() {
		c.Describe(ch)
	}
	ch <- h.backlogDesc
	ch <- h.oldestDesc
	ch <- h.depthDesc
}

// Collect sends the metrics (prometheus.Collector), reading the outbox
// backlog and queue depths first.
func (h *Hooks) Collect(ch chan<- prometheus.Metric) {
	r := h.src.Read(context.Background())
	for source := range r.Errs {
		h.scrapeErrors.WithLabelValues(source).Inc()
	}
	for _, c := range h.collectors() {
		c.Collect(ch)
	}
	if r.HasOutbox {
		ch <- prometheus.MustNewConstMetric(h.backlogDesc, prometheus.GaugeValue, float64(r.Rows))
		ch <- prometheus.MustNewConstMetric(h.oldestDesc, prometheus.GaugeValue, r.OldestAge.Seconds())
	}
	for q, n := range r.Depths {
		ch <- prometheus.MustNewConstMetric(h.depthDesc, prometheus.GaugeValue, float64(n), q)
	}
}

// OnCapture counts captured rows, or the failed call.
func (h *Hooks) OnCapture(_ context.Context, e hook.Capture) {
	if e.Err != nil {
		h.captureErrors.at(e.CQRSID, e.Signal).Inc()
		return
	}
	h.captured.at(e.CQRSID, e.Signal).Add(float64(e.Rows))
}

// OnClaim counts failed claims.
func (h *Hooks) OnClaim(_ context.Context, e hook.Claim) {
	if e.Err != nil {
		h.claimErrors.Inc()
	}
}

// OnPublish counts published and failed events and observes the confirm
// latency.
func (h *Hooks) OnPublish(_ context.Context, e hook.Publish) {
	h.published.Add(float64(e.Events - e.Failed))
	if e.Failed > 0 {
		h.publishFailures.Add(float64(e.Failed))
	}
	h.confirm.Observe(e.Duration.Seconds())
}

// OnApply counts outcomes and observes the batch's size and duration.
func (h *Hooks) OnApply(_ context.Context, e hook.Apply) {
	h.applyDuration.at(e.CQRSID).Observe(e.Duration.Seconds())
	if e.Err != nil {
		h.applyErrors.at(e.CQRSID, "").Inc()
		return
	}
	h.batchSize.at(e.CQRSID).Observe(float64(e.Size))
	for _, o := range observe.Outcomes(&e) {
		if o.N > 0 {
			h.events.at(e.CQRSID, o.Name).Add(float64(o.N))
		}
	}
}

// OnRetry counts retries.
func (h *Hooks) OnRetry(_ context.Context, e hook.Retry) {
	h.retries.at(e.CQRSID, "").Inc()
}

// OnDeadLetter counts dead letters.
func (h *Hooks) OnDeadLetter(_ context.Context, e hook.DeadLetter) {
	h.deadLetters.at(e.CQRSID, "").Inc()
}

// OnLag observes an applied event's end-to-end lag.
func (h *Hooks) OnLag(_ context.Context, e hook.Lag) {
	h.lag.at(e.CQRSID).Observe(e.Lag.Seconds())
}

// Handler returns an http.Handler serving /metrics from a registry of its
// own that holds h and the Go runtime's and process's collectors. To serve
// h beside other metrics, register it in your registry instead. Call it
// once: a second registry of h would count nothing twice, but costs.
func (h *Hooks) Handler() (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{h, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("promhook: register metrics: %w", err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), nil
}

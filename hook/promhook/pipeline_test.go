package promhook_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/promhook"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/obstest"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/transport"
)

// scrape fetches url and returns each sample by its series as exposed,
// e.g. `cqrsync_lag_seconds_count{cqrs_id="account"}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	code, body := cqrsynctesting.Get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsDuringPipelineRun scrapes /metrics while rows go from a
// PostgreSQL master through RabbitMQ to a PostgreSQL replica, and finds
// every metric with the values the run must give it.
func TestMetricsDuringPipelineRun(t *testing.T) {
	t.Parallel()
	var url string
	p := obstest.Start(t, obstest.Options{HoldRelay: true, Observe: func(p *obstest.Pipeline) (hook.Hooks, hook.Propagator) {
		h := promhook.New(&promhook.Config{
			Outbox: outbox.StatsFunc(p.MasterDriver),
			Broker: p.Transport, Queues: []string{p.Queue, transport.DeadLetterQueue(p.Queue)},
		})
		handler, err := h.Handler()
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(handler)
		t.Cleanup(srv.Close)
		url = srv.URL + "/metrics"
		return h, nil
	}})
	ctx := t.Context()
	const acct = `{cqrs_id="account"}`
	series := func(name, labels string) string { return "cqrsync_" + name + labels }

	// Captured while no relay runs: the backlog shows in the outbox.
	for id := int64(1); id <= 5; id++ {
		p.Insert(ctx, t, id, "name")
	}
	m := scrape(t, url)
	if got := m[series("captured_events_total", `{cqrs_id="account",signal="SAVE"}`)]; got != 5 {
		t.Errorf("captured_events_total = %v, want 5", got)
	}
	if got := m[series("outbox_backlog_rows", "")]; got != 5 {
		t.Errorf("outbox_backlog_rows = %v, want 5", got)
	}
	if age, ok := m[series("outbox_oldest_age_seconds", "")]; !ok || age <= 0 || age > 60 {
		t.Errorf("outbox_oldest_age_seconds = %v (present %v), want a few moments", age, ok)
	}

	// The relay drains it; two updates, a stale event, a poison row.
	p.StartRelay(t)
	p.Rename(ctx, t, 1, "renamed once")
	p.Rename(ctx, t, 1, "renamed twice")
	cqrsynctesting.Eventually(t, 30*time.Second, "the replica's update", func() bool { return p.ReplicaName(t, 1) == "renamed twice" })
	p.PublishStale(t, 1)
	p.Insert(ctx, t, 6, "poison")

	dlq := `{queue="` + transport.DeadLetterQueue(p.Queue) + `"}`
	cqrsynctesting.Eventually(t, 30*time.Second, "the stale drop, the dead letter and an empty outbox in the metrics", func() bool {
		m = scrape(t, url)
		return m[series("consumer_events_total", `{cqrs_id="account",outcome="stale"}`)] == 1 &&
			m[series("consumer_dead_letters_total", acct)] == 1 && m[series("broker_queue_depth", dlq)] == 1 &&
			m[series("outbox_backlog_rows", "")] == 0
	})
	for _, c := range []struct {
		series   string
		min, max float64
	}{
		{series("captured_events_total", `{cqrs_id="account",signal="SAVE"}`), 8, 8},
		{series("relay_published_events_total", ""), 8, 8},
		{series("relay_publish_failures_total", ""), 0, 0},
		{series("relay_claim_errors_total", ""), 0, 0},
		{series("relay_confirm_duration_seconds_count", ""), 1, 8},
		{series("relay_confirm_duration_seconds_sum", ""), 1e-6, 30},
		{series("consumer_events_total", `{cqrs_id="account",outcome="applied"}`), 7, 7},
		{series("consumer_events_total", `{cqrs_id="account",outcome="stale"}`), 1, 1},
		{series("consumer_retries_total", acct), 1, 1},
		{series("consumer_dead_letters_total", acct), 1, 1},
		{series("apply_batch_size_count", acct), 1, 8},
		{series("apply_batch_size_sum", acct), 8, 8},
		{series("apply_duration_seconds_count", acct), 2, 20},
		{series("apply_duration_seconds_sum", acct), 1e-6, 30},
		{series("apply_errors_total", acct), 1, 6}, // the batch, the event alone, its retry
		{series("lag_seconds_count", acct), 7, 7},
		{series("lag_seconds_sum", acct), 1e-6, 7 * 30},
		{series("broker_queue_depth", `{queue="`+p.Queue+`"}`), 0, 0},
		{series("broker_queue_depth", dlq), 1, 1},
		{series("outbox_backlog_rows", ""), 0, 0},
		{series("outbox_oldest_age_seconds", ""), 0, 0},
	} {
		got, ok := m[c.series]
		if !ok || got < c.min || got > c.max {
			t.Errorf("%s = %v (present %v), want in [%v, %v]", c.series, got, ok, c.min, c.max)
		}
	}
	if got := m[series("scrape_errors_total", `{source="outbox"}`)] + m[series("scrape_errors_total", `{source="broker"}`)]; got != 0 {
		t.Errorf("scrape_errors_total = %v, want 0", got)
	}
}

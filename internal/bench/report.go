package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run. Rates are per second; latencies in
// milliseconds; ratios are our figure over the raw limit (1 = as fast).
type Report struct {
	Setup      Setup            `json:"setup"`
	Raw        *RawLimits       `json:"raw,omitempty"`
	Throughput *Throughput      `json:"throughput,omitempty"`
	Drain      *Drain           `json:"drain,omitempty"`
	Steady     []Steady         `json:"steady,omitempty"`
	Hooks      *HooksComparison `json:"hooks,omitempty"`
	Consumer   ConsumerCounts   `json:"consumer"`
	Check      *Check           `json:"check,omitempty"`
	Goals      []Goal           `json:"goals"`
}

// Setup describes what ran where.
type Setup struct {
	MasterURL      string    `json:"master_url"`
	ReplicaURL     string    `json:"replica_url"`
	BrokerURL      string    `json:"broker_url"`
	MasterVersion  string    `json:"master_version"`
	ReplicaVersion string    `json:"replica_version"`
	BrokerVersion  string    `json:"broker_version"`
	Mix            Mix       `json:"mix"`
	RowBytes       int       `json:"row_bytes"`
	Writers        int       `json:"writers"`
	TxRows         int       `json:"changes_per_tx"`
	Insert         bool      `json:"creates_by_master_insert"` // and updates by Master.UpdateRow
	Workers        int       `json:"consumer_workers"`
	BatchSize      int       `json:"consumer_batch"`
	BatchWaitMS    float64   `json:"consumer_batch_wait_ms"`
	Prefetch       int       `json:"consumer_prefetch"`
	RelayBatch     int       `json:"relay_batch"`
	Outbox         string    `json:"outbox"`
	Seed           uint64    `json:"seed"`
	CPUs           int       `json:"cpus"`
	GOMAXPROCS     int       `json:"gomaxprocs"`
	GoVersion      string    `json:"go_version"`
	OS             string    `json:"os"`
	Started        time.Time `json:"started"`
}

// Latency holds the latency distributions of a phase's events.
type Latency struct {
	// CommitToVisible runs from the master's commit returning to the
	// replica's apply transaction's commit returning: the headline figure.
	CommitToVisible Percentiles `json:"commit_to_visible"`
	// StampToApply runs from the commit_us timestamp the writer put in the
	// row (just before capture and commit) to the replica's hook applying
	// it, inside the apply transaction.
	StampToApply Percentiles `json:"stamp_to_apply"`
	// StampToVisible runs from commit_us to the apply commit's return.
	StampToVisible Percentiles `json:"stamp_to_visible"`
}

// Backlog holds a phase's peaks.
type Backlog struct {
	// OutboxPeak is the most events committed and not yet published.
	OutboxPeak int64 `json:"outbox_peak"`
	// ConsumerLagPeak is the most events published and not yet settled by
	// the consumer (in the queue, in flight, or being applied).
	ConsumerLagPeak int64 `json:"consumer_lag_peak"`
	// QueueDepthPeak is the most ready messages the broker reported.
	QueueDepthPeak int64 `json:"queue_depth_peak"`
}

// Diagnostics say where a phase's time went.
type Diagnostics struct {
	// ApplyTransactions is the number of replica transactions that applied
	// creates or updates, and SavesPerApplyTx the mean number each applied
	// (deletes are not counted): the consumer's effective batch size.
	ApplyTransactions int64   `json:"apply_transactions"`
	SavesPerApplyTx   float64 `json:"saves_per_apply_tx"`
	// MasterStatements and ReplicaStatements are the kinds of statement
	// that took the most time on each side (client-side wall time: round
	// trip, server work and lock waits), all connections summed.
	MasterStatements  []StmtStat `json:"master_statements"`
	ReplicaStatements []StmtStat `json:"replica_statements"`
}

// Throughput is the outcome of the throughput phase.
type Throughput struct {
	Changes      int64 `json:"changes"`
	Transactions int64 `json:"transactions"`
	// MasterCommitRate is changes per second committed on the master.
	MasterCommitRate float64 `json:"master_commit_per_s"`
	// EndToEndRate is changes per second from the first commit to the
	// replica holding every change.
	EndToEndRate float64 `json:"end_to_end_per_s"`
	// MasterVsRawInsert and EndToEndVsRawInsert are those rates over the
	// raw INSERT+COMMIT rate with the same number of writers.
	MasterVsRawInsert   float64     `json:"master_vs_raw_insert,omitempty"`
	EndToEndVsRawInsert float64     `json:"end_to_end_vs_raw_insert,omitempty"`
	Latency             Latency     `json:"latency"`
	Backlog             Backlog     `json:"backlog"`
	Usage               Usage       `json:"usage"`
	Diagnostics         Diagnostics `json:"diagnostics"`
	// Total* count the run's writes so far, by kind.
	TotalCreates int64 `json:"total_creates"`
	TotalUpdates int64 `json:"total_updates"`
	TotalDeletes int64 `json:"total_deletes"`
}

// Drain is the outcome of the drain phase.
type Drain struct {
	Events int64 `json:"events"`
	// FillTxRows is the number of changes per master transaction of the fill.
	FillTxRows int `json:"fill_changes_per_tx"`
	// FillRate is the master's changes per second while filling the outbox
	// with the relay stopped.
	FillRate float64 `json:"fill_changes_per_s"`
	// RelayRate is events per second the relay moved from a full outbox to
	// the broker (confirmed and deleted).
	RelayRate  float64 `json:"relay_per_s"`
	RelayUsage Usage   `json:"relay_usage"`
	// RelayStatements are the master statements of the relay's run.
	RelayStatements []StmtStat `json:"relay_statements"`
	// QueueDepth is the queue's depth when the consumer started.
	QueueDepth int64 `json:"queue_depth"`
	// DrainRate is events per second from the consumer's start to the
	// replica holding every event.
	DrainRate float64 `json:"drain_per_s"`
	// Ratios to the raw limits.
	RelayVsRawPublish float64 `json:"relay_vs_raw_publish,omitempty"`
	DrainVsRawConsume float64 `json:"drain_vs_raw_consume,omitempty"`
	DrainVsRawUpsert  float64 `json:"drain_vs_raw_upsert,omitempty"`
	// DrainVsRawPipeline is the drain over the raw pipeline
	// ([RawLimits.Pipeline]), where the broker measures one.
	DrainVsRawPipeline float64 `json:"drain_vs_raw_pipeline,omitempty"`
	Backlog            Backlog `json:"backlog"`
	// Usage and Diagnostics cover the drain (consumer running, nothing
	// else busy).
	Usage       Usage       `json:"usage"`
	Diagnostics Diagnostics `json:"diagnostics"`
}

// Steady is the outcome of one steady phase.
type Steady struct {
	TargetRate   float64 `json:"target_per_s"`
	AchievedRate float64 `json:"achieved_per_s"`
	Changes      int64   `json:"changes"`
	Seconds      float64 `json:"seconds"`
	// MaxBehindMS is how far behind schedule a change started, at worst:
	// large values mean the master could not keep the rate.
	MaxBehindMS   float64     `json:"max_behind_schedule_ms"`
	WarmupSeconds float64     `json:"warmup_s"`
	Latency       Latency     `json:"latency"`
	Backlog       Backlog     `json:"backlog"`
	Usage         Usage       `json:"usage"`
	Diagnostics   Diagnostics `json:"diagnostics"`
}

// ConsumerCounts are the consumer's counters at the end of the run.
type ConsumerCounts struct {
	Received     int64 `json:"received"`
	Applied      int64 `json:"applied"`
	Dropped      int64 `json:"dropped"`
	Retried      int64 `json:"retried"`
	DeadLettered int64 `json:"dead_lettered"`
}

// Check is the end-of-run comparison of the replica with the master.
type Check struct {
	Converged   bool     `json:"converged"`
	MasterRows  int      `json:"master_rows"`
	ReplicaRows int      `json:"replica_rows"`
	Differences int      `json:"differences"`
	Examples    []string `json:"examples,omitempty"`
}

// Goal is one of issue 7's targets and whether this run met it.
type Goal struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	// Status is "met", "missed" or "not measured".
	Status string `json:"status"`
	Note   string `json:"note,omitempty"`
}

// Ratios fills in the ratios to the raw limits.
func (r *Report) Ratios() {
	if r.Raw == nil {
		return
	}
	ratio := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return math.Round(a/b*1000) / 1000
	}
	if t := r.Throughput; t != nil {
		t.MasterVsRawInsert = ratio(t.MasterCommitRate, r.Raw.InsertCommit)
		t.EndToEndVsRawInsert = ratio(t.EndToEndRate, r.Raw.InsertCommit)
	}
	if d := r.Drain; d != nil {
		d.RelayVsRawPublish = ratio(d.RelayRate, r.Raw.Publish)
		d.DrainVsRawConsume = ratio(d.DrainRate, r.Raw.Consume)
		d.DrainVsRawUpsert = ratio(d.DrainRate, r.Raw.Upsert)
		d.DrainVsRawPipeline = ratio(d.DrainRate, r.Raw.Pipeline)
	}
}

// evaluate states issue 7's goals against this run's figures.
func (r *Report) evaluate() []Goal {
	status := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	var goals []Goal
	g := Goal{Name: "end-to-end throughput", Target: "≥ 60% of raw INSERT+COMMIT, 8 writers", Status: "not measured"}
	if t := r.Throughput; t != nil && r.Raw != nil {
		g.Measured = fmt.Sprintf("%s = %.0f%% of %s", rps(t.EndToEndRate), 100*t.EndToEndVsRawInsert, rps(r.Raw.InsertCommit))
		g.Status = status(t.EndToEndVsRawInsert >= 0.60)
		if r.Setup.Writers != 8 {
			g.Note = fmt.Sprintf("run with %d writers, the goal says 8", r.Setup.Writers)
		}
	}
	goals = append(goals, g)

	g = Goal{Name: "backlog drain", Target: "≥ 10,000 events/s and ≥ 70% of raw consume, 100,000 queued", Status: "not measured"}
	if d := r.Drain; d != nil {
		g.Measured = rps(d.DrainRate)
		ok := d.DrainRate >= 10_000
		g.Status = status(ok)
		if r.Raw != nil {
			g.Measured += fmt.Sprintf(" = %.0f%% of %s", 100*d.DrainVsRawConsume, rps(r.Raw.Consume))
			g.Status = status(ok && d.DrainVsRawConsume >= 0.70)
			if pl := r.Raw.Pipeline; pl > 0 && r.Raw.Consume > 0 && pl < 0.70*r.Raw.Consume {
				g.Note = fmt.Sprintf("above this machine's ceiling: with no cqrsync at all, the raw consume feeding the raw upserts reached %.0f%% of the raw consume; the drain is %.0f%% of that",
					100*pl/r.Raw.Consume, 100*d.DrainVsRawPipeline)
			}
		} else if ok {
			g.Status = "not measured" // the rate is met; the ratio needs the raw consume rate
			g.Note = "run without --skip-raw for the ratio to raw consume"
		}
		if d.Events < 100_000 {
			g.Note = fmt.Sprintf("%d events queued, the goal says 100,000", d.Events)
		}
	}
	goals = append(goals, g)

	g = Goal{Name: "latency at 1,000 changes/s", Target: "p50 < 5 ms, p99 < 25 ms (commit → visible)", Status: "not measured"}
	for _, s := range r.Steady {
		if s.TargetRate != 1000 {
			continue
		}
		l := s.Latency.CommitToVisible
		g.Measured = fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", l.P50, l.P99)
		g.Status = status(l.P50 < 5 && l.P99 < 25)
		if s.AchievedRate < 0.95*s.TargetRate {
			g.Note = fmt.Sprintf("the master reached only %.0f/s", s.AchievedRate)
		}
	}
	goals = append(goals, g)

	g = Goal{Name: "consumer memory during the drain", Target: "peak RSS < 100 MB", Status: "not measured"}
	if d := r.Drain; d != nil {
		g.Measured = fmt.Sprintf("%.0f MB (process; %.0f MB before the drain)", d.Usage.PeakRSSMB, d.Usage.StartRSSMB)
		g.Status = status(d.Usage.PeakRSSMB < 100)
		g.Note = "the whole bench process: master pools, bookkeeping and consumer"
	}
	goals = append(goals, g)

	g = Goal{Name: "hooks overhead (issue 15)", Target: "≤ 3% of end-to-end throughput with Prometheus + OpenTelemetry on", Status: "not measured"}
	if h := r.Hooks; h != nil {
		g.Measured = fmt.Sprintf("%.1f%% (median %s off, %s on; master commit %.1f%%; process CPU per change %+.1f%%)",
			100*h.Overhead, rps(h.EndToEndOff), rps(h.EndToEndOn), 100*h.MasterOverhead, 100*h.CPUOverhead)
		g.Status = status(h.Overhead <= 0.03)
		g.Note = fmt.Sprintf("%d rounds per side, %g%% of events traced", len(h.Rounds)/2, 100*h.Sample)
	}
	goals = append(goals, g)
	return goals
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as plain-text tables.
func (r *Report) WriteTable(w io.Writer) error {
	s := r.Setup
	var b strings.Builder
	fmt.Fprintf(&b, "cqrsync bench — %s, %d CPUs (GOMAXPROCS %d), %s\n", s.OS, s.CPUs, s.GOMAXPROCS, s.GoVersion)
	fmt.Fprintf(&b, "master   %s (%s)\nreplica  %s (%s)\nbroker   %s (%s)\n", s.MasterVersion, s.MasterURL, s.ReplicaVersion, s.ReplicaURL, s.BrokerVersion, s.BrokerURL)
	capture := "INSERT + Master.Create, UPDATE + Master.Update"
	if s.Insert {
		capture = "Master.Insert, Master.UpdateRow"
	}
	fmt.Fprintf(&b, "workload %s, %d-byte rows, %d writers, %d change(s) per transaction, captured by %s, seed %d\n", s.Mix, s.RowBytes, s.Writers, s.TxRows, capture, s.Seed)
	wait := ""
	if s.BatchWaitMS > 0 {
		wait = fmt.Sprintf(" (waiting up to %g ms to fill it)", s.BatchWaitMS)
	}
	fmt.Fprintf(&b, "consumer %d workers × batch %d%s, prefetch %d; relay batch %d; outbox: %s\n", s.Workers, s.BatchSize, wait, s.Prefetch, s.RelayBatch, cmp.Or(s.Outbox, "table"))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	b.Reset()
	row := func(cells ...string) {
		for len(cells) < 4 {
			cells = append(cells, "")
		}
		line := fmt.Sprintf("  %-42s %17s %10s %6s", cells[0], cells[1], cells[2], cells[3])
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	left := func(title string) { fmt.Fprintf(&b, "\n%s\n", title) }

	if raw := r.Raw; raw != nil {
		left("RAW LIMITS (same servers, same run, no cqrsync)")
		row("master INSERT+COMMIT, "+itoa(s.Writers)+" writers", rps(raw.InsertCommit), "", "")
		row(fmt.Sprintf("broker confirmed publish, batch %d", s.RelayBatch), rps(raw.Publish), "", "")
		row(fmt.Sprintf("broker consume, prefetch %d, ack/%d", s.Prefetch, s.BatchSize), rps(raw.Consume), "", "")
		row(fmt.Sprintf("replica upsert, %d conns × %d rows", s.Workers, s.BatchSize), rps(raw.Upsert), "", "")
		if raw.Pipeline > 0 {
			row(fmt.Sprintf("consume → upsert, %d × %d, ack each", s.Workers, s.BatchSize), rps(raw.Pipeline), "", "")
		}
		left("  during the raw INSERT+COMMIT:")
		usageRows(row, raw.InsertCommitUsage)
		stmtRows(row, "raw INSERT+COMMIT statements", raw.InsertCommitStatements)
	}
	if t := r.Throughput; t != nil {
		left(fmt.Sprintf("THROUGHPUT (%d changes, as fast as possible)", t.Changes))
		row("", "cqrsync", "raw", "ratio")
		row("master commit rate", rps(t.MasterCommitRate), rawOr(r.Raw, func(x *RawLimits) float64 { return x.InsertCommit }), pct(t.MasterVsRawInsert))
		row("end-to-end (first commit → all visible)", rps(t.EndToEndRate), rawOr(r.Raw, func(x *RawLimits) float64 { return x.InsertCommit }), pct(t.EndToEndVsRawInsert))
		latencyRows(row, t.Latency)
		backlogRows(row, t.Backlog)
		usageRows(row, t.Usage)
		perChangeRow(row, t.Usage, t.Changes)
		diagRows(row, t.Diagnostics)
	}
	if d := r.Drain; d != nil {
		left(fmt.Sprintf("DRAIN (%d events queued with the consumer stopped)", d.Events))
		row("", "cqrsync", "raw", "ratio")
		row(fmt.Sprintf("fill: master changes, %d per tx, relay off", d.FillTxRows), rps(d.FillRate), "", "")
		row("relay: outbox → broker", rps(d.RelayRate), rawOr(r.Raw, func(x *RawLimits) float64 { return x.Publish }), pct(d.RelayVsRawPublish))
		row("drain: queue → replica", rps(d.DrainRate), rawOr(r.Raw, func(x *RawLimits) float64 { return x.Consume }), pct(d.DrainVsRawConsume))
		row("  (vs raw replica upsert)", "", rawOr(r.Raw, func(x *RawLimits) float64 { return x.Upsert }), pct(d.DrainVsRawUpsert))
		if r.Raw != nil && r.Raw.Pipeline > 0 {
			row("  (vs raw consume → upsert)", "", rps(r.Raw.Pipeline), pct(d.DrainVsRawPipeline))
		}
		row("queue depth at consumer start", itoa(int(d.QueueDepth)), "", "")
		usageRows(row, d.Usage)
		stmtRows(row, "relay: master statements", d.RelayStatements)
		diagRows(row, d.Diagnostics)
	}
	if h := r.Hooks; h != nil {
		left(fmt.Sprintf("HOOKS OFF vs ON (Prometheus + OpenTelemetry, %g%% of events traced; %d rounds of %d changes, alternating)", 100*h.Sample, len(h.Rounds), h.Changes))
		row("", "off", "on", "cost")
		row("end-to-end, median", rps(h.EndToEndOff), rps(h.EndToEndOn), pct(h.Overhead))
		row("master commit rate, median", rps(h.MasterCommitOff), rps(h.MasterCommitOn), pct(h.MasterOverhead))
		row("process CPU per change, median", fmt.Sprintf("%.0f µs", h.CPUPerChangeOff), fmt.Sprintf("%.0f µs", h.CPUPerChangeOn), pct(h.CPUOverhead))
		row("  each round: end-to-end, commit rate, CPU/change", "", "", "")
		for i, rd := range h.Rounds {
			row(fmt.Sprintf("  round %d, hooks %s", i+1, onOff(rd.Hooks)), rps(rd.EndToEnd), rps(rd.MasterCommit), fmt.Sprintf("%.0f µs", rd.CPUPerChange))
		}
	}
	for _, st := range r.Steady {
		left(fmt.Sprintf("STEADY %.0f changes/s for %.1f s (first %.1f s left out)", st.TargetRate, st.Seconds, st.WarmupSeconds))
		row("achieved rate", rps(st.AchievedRate), "", "")
		row("max start behind schedule", fmt.Sprintf("%.1f ms", st.MaxBehindMS), "", "")
		latencyRows(row, st.Latency)
		backlogRows(row, st.Backlog)
		usageRows(row, st.Usage)
		perChangeRow(row, st.Usage, st.Changes)
		diagRows(row, st.Diagnostics)
	}
	c := r.Consumer
	fmt.Fprintf(&b, "\nconsumer: %d received, %d applied, %d dropped, %d retried, %d dead-lettered\n", c.Received, c.Applied, c.Dropped, c.Retried, c.DeadLettered)
	switch {
	case r.Check == nil:
		b.WriteString("not compared: the run stopped early\n")
	case r.Check.Converged:
		fmt.Fprintf(&b, "converged: the replica equals the master (%d rows compared)\n", r.Check.MasterRows)
	default:
		fmt.Fprintf(&b, "DIVERGED: %d difference(s) (master %d rows, replica %d)\n", r.Check.Differences, r.Check.MasterRows, r.Check.ReplicaRows)
		for _, e := range r.Check.Examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	if len(r.Goals) > 0 {
		b.WriteString("\nGOALS (issues 7 and 15)\n")
		for _, g := range r.Goals {
			fmt.Fprintf(&b, "  %-14s %s: %s", "["+g.Status+"]", g.Name, g.Target)
			if g.Measured != "" {
				fmt.Fprintf(&b, " — measured %s", g.Measured)
			}
			if g.Note != "" {
				fmt.Fprintf(&b, " (%s)", g.Note)
			}
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func latencyRows(row func(...string), l Latency) {
	p := l.CommitToVisible
	row(fmt.Sprintf("latency commit → visible (%s events)", itoa(p.Count)), "", "", "")
	row("  p50 / p95", fmt.Sprintf("%.1f / %.1f ms", p.P50, p.P95), "", "")
	row("  p99 / max", fmt.Sprintf("%.1f / %.1f ms", p.P99, p.Max), "", "")
	a := l.StampToApply
	row("  row stamp → apply statement p50 / p99", fmt.Sprintf("%.1f / %.1f ms", a.P50, a.P99), "", "")
}

func backlogRows(row func(...string), b Backlog) {
	row("outbox backlog peak", itoa(int(b.OutboxPeak)), "", "")
	row("consumer lag peak / queue depth peak", fmt.Sprintf("%d / %d", b.ConsumerLagPeak, b.QueueDepthPeak), "", "")
}

func usageRows(row func(...string), u Usage) {
	row("process CPU (100% = one core)", fmt.Sprintf("%.0f%% (%.1f s)", u.CPUPercent, u.CPUSeconds), "", "")
	if u.MachineBusyPercent > 0 {
		row("machine CPU busy, all processes", fmt.Sprintf("%.0f%%", u.MachineBusyPercent), "", "")
	}
	if len(u.ServersCPUPercent) > 0 {
		names := slices.Sorted(maps.Keys(u.ServersCPUPercent))
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s %.0f%%", n, u.ServersCPUPercent[n])
		}
		row("server processes' CPU (100% = one core)", strings.Join(parts, ", "), "", "")
	}
	row("process RSS peak (start)", fmt.Sprintf("%.0f MB (%.0f)", u.PeakRSSMB, u.StartRSSMB), "", "")
}

// perChangeRow prints the CPU time each process spent per change of the
// phase (this process: writers, relay and consumer; each server's
// processes, other clients' work included), so the outbox paths compare
// by cost rather than by rate.
func perChangeRow(row func(...string), u Usage, changes int64) {
	if changes <= 0 || u.WallSeconds <= 0 {
		return
	}
	perChange := func(pct float64) string {
		return fmt.Sprintf("%.0f µs", pct/100*u.WallSeconds/float64(changes)*1e6)
	}
	parts := []string{"cqrsync " + perChange(u.CPUPercent)}
	for _, n := range slices.Sorted(maps.Keys(u.ServersCPUPercent)) {
		parts = append(parts, n+" "+perChange(u.ServersCPUPercent[n]))
	}
	row("CPU per change", strings.Join(parts, ", "), "", "")
}

func diagRows(row func(...string), d Diagnostics) {
	if d.ApplyTransactions > 0 {
		row("replica apply transactions (creates+updates each)", fmt.Sprintf("%s (%.1f)", itoa(int(d.ApplyTransactions)), d.SavesPerApplyTx), "", "")
	}
	stmtRows(row, "master statements", d.MasterStatements)
	stmtRows(row, "replica statements", d.ReplicaStatements)
}

// stmtRows lists the statements that took the most time, with their count
// and mean duration.
func stmtRows(row func(...string), title string, sts []StmtStat) {
	if len(sts) == 0 {
		return
	}
	row(title+" (time, count, mean)", "", "", "")
	for _, s := range sts[:min(5, len(sts))] {
		name := s.Statement
		if len(name) > 40 {
			name = name[:39] + "…"
		}
		row("  "+name, fmt.Sprintf("%.0f ms", s.TotalMS), itoa(int(s.Count)), fmt.Sprintf("%.0fµs", s.MeanUS))
	}
}

func rawOr(raw *RawLimits, f func(*RawLimits) float64) string {
	if raw == nil {
		return ""
	}
	return rps(f(raw))
}

func rps(v float64) string {
	if v == 0 {
		return "-"
	}
	return thousands(int64(math.Round(v))) + "/s"
}

func pct(r float64) string {
	if r == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f%%", 100*r)
}

func itoa(n int) string { return thousands(int64(n)) }

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

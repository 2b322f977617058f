package outbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/backoff"
	"github.com/cqrsync/cqrsync/internal/startstop"
	"github.com/cqrsync/cqrsync/internal/ujson"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// Config configures a [Relay].
type Config struct {
	// Publisher sends the events. Required.
	Publisher transport.Publisher
	// BatchSize is the most events claimed and published at once.
	// Default 500.
	BatchSize int
	// PollInterval is how often the relay looks for events when nothing
	// wakes it (events committed by another process). Default 200 ms.
	PollInterval time.Duration
	// Lease is how long claimed events stay reserved for this relay; a relay
	// that dies holding them leaves them to the others after this long.
	// Default 30 s; it must exceed the publish timeout. Every duration of
	// Config must be positive, or 0 for its default; negatives are refused.
	Lease time.Duration
	// PublishTimeout bounds one batch publish. Default 10 s.
	PublishTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failure (broker or
	// database down); it doubles from MinBackoff up to MaxBackoff, with
	// jitter. Defaults 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives failures and recoveries. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Hooks, when set, observes every claim and publish (see package hook).
	// Nil costs nothing.
	Hooks hook.Hooks
	// Renderer turns the outbox rows that capture triggers wrote (row
	// images, package capture/trigger) into events before they are
	// published: set it to the master (a *cqrsync.Master) whose models
	// the triggers capture. Nil is fine while no table has capture
	// triggers; a row image found then stays in the outbox, and the relay
	// reports it and backs off, until a relay with a Renderer publishes it.
	Renderer Renderer
}

// Renderer renders an outbox row that is not an event yet (a capture
// trigger's row image) into one; *cqrsync.Master is one.
type Renderer interface {
	// RenderOutbox replaces row's Body and Headers with the event it
	// describes, or returns publish false when there is none to send (the
	// row is then deleted unpublished). It leaves an event alone. It is
	// called from the relay's goroutine, one row at a time.
	RenderOutbox(ctx context.Context, row *sqldialect.OutboxRow) (publish bool, err error)
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.BatchSize = cmp.Or(c.BatchSize, 500)
	c.PollInterval = cmp.Or(c.PollInterval, 200*time.Millisecond)
	c.Lease = cmp.Or(c.Lease, 30*time.Second)
	c.PublishTimeout = cmp.Or(c.PublishTimeout, 10*time.Second)
	c.MinBackoff = cmp.Or(c.MinBackoff, 100*time.Millisecond)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, 10*time.Second)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c *Config) validate() error {
	var errs []error
	if c.Publisher == nil {
		errs = append(errs, errors.New("outbox: Config.Publisher is nil: set a transport publisher"))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("outbox: Config.BatchSize is negative (%d): use a positive size, or 0 for the default 500", c.BatchSize))
	}
	for _, d := range []struct {
		field string
		d     time.Duration
	}{{"PollInterval", c.PollInterval}, {"Lease", c.Lease}, {"PublishTimeout", c.PublishTimeout}, {"MinBackoff", c.MinBackoff}, {"MaxBackoff", c.MaxBackoff}} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("outbox: Config.%s is negative (%v): use a positive duration, or 0 for the default", d.field, d.d))
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("outbox: Config.MaxBackoff (%v) is below MinBackoff (%v): raise MaxBackoff", c.MaxBackoff, c.MinBackoff))
	}
	if c.Lease <= c.PublishTimeout {
		errs = append(errs, fmt.Errorf("outbox: Config.Lease (%v) must exceed PublishTimeout (%v), or two relays could send the same batch", c.Lease, c.PublishTimeout))
	}
	return errors.Join(errs...)
}

// relayStore is what a Relay asks of its database's dialect: the outbox
// and nothing else.
type relayStore interface {
	ClaimOutbox(ctx context.Context, ex sqldialect.Executor, params *sqldialect.ClaimOutboxParams) ([]sqldialect.OutboxRow, error)
	DeleteOutbox(ctx context.Context, ex sqldialect.Executor, ids []int64) error
	ReleaseOutbox(ctx context.Context, ex sqldialect.Executor, ids []int64) error
	OutboxStats(ctx context.Context, ex sqldialect.Executor) (*sqldialect.OutboxStats, error)
}

// Relay moves committed events from the outbox to the broker: it claims a
// batch in ID order, sets each event's expires to publish time plus its
// message TTL (as django-cqrs does; see cqrsync.RestampExpires), publishes
// it, and deletes the rows only after the
// publisher confirmed them. If the broker is down it keeps the rows, backs
// off and tries again, so an event is never lost; it may be sent twice (if
// the process dies between confirm and delete), which replicas drop by
// revision. Several relays may run on one database: each claims its own
// rows under a lease.
type Relay struct {
	cfg    Config
	db     sqldialect.Executor // the master database's pool
	d      relayStore
	runner startstop.Runner
	wake   chan struct{}
	// early is set by Notify: the wake came before the capturing
	// transaction committed, so the run loop polls briefly for its rows.
	early atomic.Bool

	// waiting, when set (by tests), is told how long the run loop is about
	// to wait for a wake.
	waiting func(time.Duration)

	published atomic.Int64
	failures  atomic.Int64
	looks     atomic.Int64 // times the run loop looked for events (tests wait on it)
}

// NewRelay returns a relay on the master database db (a driver from
// sqldialect/databasesql or sqldialect/pgxv5); Start runs it. It claims
// and deletes outbox rows on db's pool, in db's dialect.
func NewRelay(db sqldialect.DB, cfg *Config) (*Relay, error) {
	if db == nil {
		return nil, errors.New("outbox: NewRelay: db is nil: pass the master database's driver, e.g. databasesql.New(db, sqldialect.Postgres())")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Relay{cfg: c, db: db.Pool(), d: db.Dialect(), wake: make(chan struct{}, 1)}, nil
}

// Wake makes the relay look for events now, once: call it after a
// transaction that captured events committed. It never blocks, and wakes
// that come while the relay is busy fold into one more look. A Master
// configured with MasterConfig.Relay calls it from [cqrsync.RunTx] and
// [cqrsync.Master.Committed].
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Notify wakes the relay for a capture whose transaction has not committed
// yet (MasterConfig.Notify, which runs inside the transaction): the rows
// appear a moment later, so the relay polls quickly for hotWindow (4 claim
// queries per capture at 100 captures/s). Prefer MasterConfig.Relay, which
// wakes the relay with Wake after the commit: one claim per capture.
func (r *Relay) Notify() {
	r.early.Store(true)
	r.Wake()
}

// Start runs the relay in the background until ctx ends or Stop is called.
func (r *Relay) Start(ctx context.Context) error {
	return r.runner.Start(ctx, func(ctx context.Context, started func()) error {
		started()
		return r.run(ctx)
	})
}

// Started is closed once the relay runs.
func (r *Relay) Started() <-chan struct{} { return r.runner.Started() }

// Stop stops the relay and waits for it. A batch being published is
// abandoned: its rows stay in the outbox (released for the next relay), so
// nothing is lost.
func (r *Relay) Stop() error { return r.runner.Stop() }

// Published returns how many events this relay has published.
func (r *Relay) Published() int64 { return r.published.Load() }

// Stats reports the outbox backlog.
func (r *Relay) Stats(ctx context.Context) (*sqldialect.OutboxStats, error) {
	return r.d.OutboxStats(ctx, r.db)
}

// StatsFunc returns a function that reads the outbox backlog of the master
// database db each time it is called, without a relay: what a metrics
// collector calls when it is scraped (hook/promhook's Config.Outbox).
func StatsFunc(db sqldialect.DB) func(context.Context) (*sqldialect.OutboxStats, error) {
	ex, d := db.Pool(), db.Dialect()
	return func(ctx context.Context) (*sqldialect.OutboxStats, error) { return d.OutboxStats(ctx, ex) }
}

// hotWindow is how long after a Notify the relay polls quickly: Notify comes
// before the caller commits, so the rows appear a moment later. Wake, which
// comes after the commit, needs no window.
const hotWindow = 50 * time.Millisecond

func (r *Relay) run(ctx context.Context) error {
	retry := backoff.Backoff{Min: r.cfg.MinBackoff, Max: r.cfg.MaxBackoff}
	var hotUntil time.Time
	quick := time.Millisecond
	for {
		n, err := r.RunOnce(ctx)
		r.looks.Add(1)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.failures.Add(1)
			wait := retry.Next() // with jitter, so relays do not retry in step
			r.cfg.Logger.WarnContext(ctx, "outbox: relay failed, retrying", slog.Any("error", err), slog.Duration("retry_in", wait))
			if !backoff.Sleep(ctx, wait) {
				return nil
			}
			continue
		}
		if retry.Failing() {
			r.cfg.Logger.InfoContext(ctx, "outbox: relay recovered")
			retry.Reset()
		}
		if n == r.cfg.BatchSize {
			continue // more waiting
		}
		if n > 0 && r.cfg.Now().Before(hotUntil) {
			// Notify's captures keep coming: stay quick a while longer.
			hotUntil = r.cfg.Now().Add(hotWindow)
			quick = time.Millisecond
		}
		wait := r.cfg.PollInterval
		if r.cfg.Now().Before(hotUntil) {
			wait = quick
			quick = min(2*quick, 16*time.Millisecond)
		}
		if r.waiting != nil {
			r.waiting(wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-r.wake:
			timer.Stop()
			if r.early.Swap(false) {
				hotUntil = r.cfg.Now().Add(hotWindow)
				quick = time.Millisecond
			}
		case <-timer.C:
		}
	}
}

// RunOnce claims one batch, publishes it and deletes what the broker
// confirmed. It returns how many events it claimed. Start calls it in a
// loop; tools and tests may call it directly.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	h := r.cfg.Hooks
	var began time.Time
	if h != nil {
		began = time.Now()
	}
	now := r.cfg.Now()
	rows, err := r.d.ClaimOutbox(ctx, r.db, &sqldialect.ClaimOutboxParams{
		Limit: r.cfg.BatchSize, Now: now, LeaseUntil: now.Add(r.cfg.Lease),
	})
	if h != nil {
		h.OnClaim(ctx, hook.Claim{Rows: len(rows), Duration: time.Since(began), Err: err})
	}
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	claimed := len(rows)
	var rerr error
	// Rendering must leave the lease time to publish: past this, another
	// relay may claim the rows again.
	rctx, rcancel := context.WithDeadline(ctx, now.Add(r.cfg.Lease-r.cfg.PublishTimeout))
	rows, rerr = r.render(rctx, rows)
	rcancel()
	if len(rows) == 0 {
		return claimed, rerr
	}
	// django-cqrs sets expires when it publishes: an event held here
	// through a broker outage must not arrive expired.
	publishAt := r.cfg.Now()
	msgs := make([]transport.Message, len(rows))
	tracer, _ := h.(hook.Tracer)
	var ends []func(error)
	for i, row := range rows {
		body := cqrsync.RestampExpires(nil, row.Body, row.CreatedAt, publishAt)
		headers := row.Headers
		if tracer != nil {
			// The publish span's context goes out in the message's headers
			// (the row's stay as they are, for a retry).
			headers = maps.Clone(headers)
			if headers == nil {
				headers = map[string]string{}
			}
			ends = append(ends, tracer.TracePublish(ctx, row.CQRSID, hook.MapCarrier(headers)))
		}
		msgs[i] = transport.Message{CQRSID: row.CQRSID, Queue: row.Queue, Body: body, Headers: headers}
	}
	if h != nil {
		began = time.Now()
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	perr := r.cfg.Publisher.Publish(pctx, msgs)
	cancel()
	if h != nil {
		// Reported once the rows are settled, with perr as RunOnce returns
		// it (events routed nowhere count as published).
		took := time.Since(began)
		defer func() {
			h.OnPublish(ctx, hook.Publish{Events: len(rows), Failed: failedCount(rows, perr), Duration: took, Err: perr})
		}()
	}

	done, failed := rows, []sqldialect.OutboxRow(nil)
	if perr != nil {
		var unroutable []sqldialect.OutboxRow
		done, failed, unroutable = splitFailed(rows, perr)
		endSpans(ends, rows, failed, perr)
		ends = nil
		if len(unroutable) > 0 {
			// No replica is bound for these models (yet): the broker would
			// drop them again however often they are sent, as it does for
			// django-cqrs. They count as published.
			r.cfg.Logger.WarnContext(ctx, "outbox: events routed to no queue (no replica bound for their cqrs_id); dropped",
				slog.Int("events", len(unroutable)), slog.String("cqrs_id", unroutable[0].CQRSID))
			done = append(done, unroutable...)
		}
		if len(failed) == 0 {
			perr = nil
		}
	}
	endSpans(ends, rows, nil, nil)
	// Settling must not be cut short by a stop: a confirmed row left in the
	// outbox is only a duplicate, but finishing is cheap.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	if len(done) > 0 {
		if err := r.d.DeleteOutbox(sctx, r.db, ids(done)); err != nil {
			return claimed, fmt.Errorf("outbox: delete %d published events (they will be sent again): %w", len(done), err)
		}
		r.published.Add(int64(len(done)))
	}
	if len(failed) > 0 {
		if err := r.d.ReleaseOutbox(sctx, r.db, ids(failed)); err != nil {
			r.cfg.Logger.WarnContext(ctx, "outbox: release unpublished events (their lease will expire)", slog.Any("error", err))
		}
	}
	if perr != nil {
		return claimed, errors.Join(fmt.Errorf("outbox: publish %d of %d events: %w", len(failed), len(rows), perr), rerr)
	}
	return claimed, rerr
}

// render renders the row images among rows (see Config.Renderer) and
// returns the rows to publish. Rows with nothing to publish are deleted;
// rows that cannot be rendered are released and reported in err, so the
// relay backs off before it claims them again, and so are the later rows
// of their keys, which must not overtake them.
func (r *Relay) render(ctx context.Context, rows []sqldialect.OutboxRow) ([]sqldialect.OutboxRow, error) {
	var drop, hold []int64
	var errs []error
	// held are the keys of the rows held back: their later events in this
	// claim wait too, or they would reach replicas before them.
	var held map[string]bool
	late := false // the render deadline passed
	holdKey := func(row *sqldialect.OutboxRow) {
		if held == nil {
			held = map[string]bool{}
		}
		held[eventKey(row)] = true
	}
	out := rows[:0:0]
	for i := range rows {
		row := &rows[i]
		if held != nil && held[eventKey(row)] {
			hold = append(hold, row.ID)
			continue
		}
		if !sqldialect.IsRowImage(row.Body) {
			out = append(out, *row)
			continue
		}
		if ctx.Err() != nil {
			// The render deadline passed: the rest waits for the next claim.
			hold = append(hold, row.ID)
			holdKey(row)
			if !late {
				late = true
				errs = append(errs, fmt.Errorf("outbox: rendering the claimed row images took longer than the lease leaves (Lease %v − PublishTimeout %v); the rest waits for the next claim: raise Lease or lower BatchSize", r.cfg.Lease, r.cfg.PublishTimeout))
			}
			continue
		}
		if r.cfg.Renderer == nil {
			hold = append(hold, row.ID)
			holdKey(row)
			if len(errs) == 0 {
				errs = append(errs, fmt.Errorf("outbox: row %d of %s was written by a capture trigger and needs rendering: set outbox.Config.Renderer to the master (cqrsync.Master) that registers %s", row.ID, row.CQRSID, row.CQRSID))
			}
			continue
		}
		publish, err := r.cfg.Renderer.RenderOutbox(ctx, row)
		switch {
		case err != nil:
			hold = append(hold, row.ID)
			holdKey(row)
			errs = append(errs, fmt.Errorf("outbox: render row %d of %s: %w", row.ID, row.CQRSID, err))
		case publish:
			out = append(out, *row)
		default:
			drop = append(drop, row.ID)
		}
	}
	if len(drop) == 0 && len(hold) == 0 {
		return out, nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if len(drop) > 0 {
		if err := r.d.DeleteOutbox(sctx, r.db, drop); err != nil {
			errs = append(errs, fmt.Errorf("outbox: delete %d rows with no event: %w", len(drop), err))
		}
	}
	if len(hold) > 0 {
		if err := r.d.ReleaseOutbox(sctx, r.db, hold); err != nil {
			r.cfg.Logger.WarnContext(ctx, "outbox: release rows that could not be rendered (their lease will expire)", slog.Any("error", err))
		}
	}
	return out, errors.Join(errs...)
}

// splitFailed separates the rows the broker confirmed, the rows it did not,
// and the rows it could route nowhere. When the error does not say which
// failed, none counts as confirmed.
func splitFailed(rows []sqldialect.OutboxRow, err error) (done, failed, unroutable []sqldialect.OutboxRow) {
	var pe *transport.PublishError
	if !errors.As(err, &pe) || (pe.Failed == nil && pe.Unroutable == nil) {
		return nil, rows, nil
	}
	const (
		isFailed     = 1
		isUnroutable = 2
	)
	state := make(map[int]int, len(pe.Failed)+len(pe.Unroutable))
	for _, i := range pe.Unroutable {
		state[i] = isUnroutable
	}
	for _, i := range pe.Failed {
		state[i] = isFailed
	}
	for i, row := range rows {
		switch state[i] {
		case isFailed:
			failed = append(failed, row)
		case isUnroutable:
			unroutable = append(unroutable, row)
		default:
			done = append(done, row)
		}
	}
	return done, failed, unroutable
}

// failedCount is how many of rows the broker did not take when Publish
// returned err.
func failedCount(rows []sqldialect.OutboxRow, err error) int {
	if err == nil {
		return 0
	}
	_, failed, _ := splitFailed(rows, err)
	return len(failed)
}

// endSpans ends the publish spans of rows (ends[i] is rows[i]'s): those of
// failed with err, the others without an error. Nil ends does nothing.
func endSpans(ends []func(error), rows, failed []sqldialect.OutboxRow, err error) {
	if ends == nil {
		return
	}
	bad := make(map[int64]bool, len(failed))
	for _, row := range failed {
		bad[row.ID] = true
	}
	for i, row := range rows {
		if bad[row.ID] {
			ends[i](err)
		} else {
			ends[i](nil)
		}
	}
}

func ids(rows []sqldialect.OutboxRow) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

// eventKey is the model and key of an outbox row, the same for a row image
// (its "key", the key as text) and a rendered event (its instance_pk, a
// JSON number or string) of one row.
func eventKey(row *sqldialect.OutboxRow) string {
	field := "instance_pk"
	if sqldialect.IsRowImage(row.Body) {
		field = "key"
	}
	raw := []byte(nil)
	if start, end, ok := ujson.TopLevelValue(row.Body, field); ok {
		raw = row.Body[start:end]
	}
	if len(raw) > 0 && raw[0] == '"' {
		var text string
		if json.Unmarshal(raw, &text) == nil {
			return row.CQRSID + "\x00" + text
		}
	}
	return row.CQRSID + "\x00" + string(raw)
}

package pgwal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/backoff"
	"github.com/cqrsync/cqrsync/internal/startstop"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// Defaults of the slot and publication names.
const (
	DefaultSlot        = "cqrsync"
	DefaultPublication = "cqrsync"
)

// Config configures a [Relay].
type Config struct {
	// ConnString is the master database's URL or DSN (pgx syntax). Required.
	// The relay opens a replication connection with it (it adds
	// replication=database), so its role needs the REPLICATION attribute
	// (or rds_replication and the like on managed databases; docs/wal.md).
	ConnString string
	// Slot is the logical replication slot's name: lower-case letters,
	// digits and underscores. Default DefaultSlot. One relay streams a
	// slot at a time.
	Slot string
	// Publication is the publication pgoutput reads (created without
	// tables when missing). Default DefaultPublication.
	Publication string
	// Publisher sends the events. Required.
	Publisher transport.Publisher
	// BatchSize is the most events published at once. Default 500.
	BatchSize int
	// PublishTimeout bounds one batch publish. Default 10 s.
	PublishTimeout time.Duration
	// StatusInterval is how often the relay reports its confirmed position
	// to PostgreSQL (and at most how long a confirmed event is kept in the
	// log for it), also while it waits for the broker. Default 1 s. The
	// relay reports at least three times per wal_sender_timeout (60 s by
	// default) whatever this says, so that PostgreSQL does not end the
	// replication connection.
	StatusInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before streaming again after
	// a failure (broker or database down, slot in use by another relay);
	// it doubles from MinBackoff up to MaxBackoff, with jitter. Defaults
	// 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives failures, recoveries and slot waits. Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock that stamps expires at publish. Default time.Now.
	Now func() time.Time
	// Hooks, when set, observes every publish (hook.Publish). Nil costs
	// nothing.
	Hooks hook.Hooks
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Slot = cmp.Or(c.Slot, DefaultSlot)
	c.Publication = cmp.Or(c.Publication, DefaultPublication)
	c.BatchSize = cmp.Or(c.BatchSize, 500)
	c.PublishTimeout = cmp.Or(c.PublishTimeout, 10*time.Second)
	c.StatusInterval = cmp.Or(c.StatusInterval, time.Second)
	c.MinBackoff = cmp.Or(c.MinBackoff, 100*time.Millisecond)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, 10*time.Second)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validName is what slot and publication names may be: they are pasted
// into replication commands, which take no parameters.
var validName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func (c *Config) validate() error {
	var errs []error
	if c.ConnString == "" {
		errs = append(errs, errors.New("pgwal: Config.ConnString is empty: set the master database's URL"))
	}
	if c.Publisher == nil {
		errs = append(errs, errors.New("pgwal: Config.Publisher is nil: set a transport publisher"))
	}
	for _, n := range []struct{ field, name string }{{"Slot", c.Slot}, {"Publication", c.Publication}} {
		if !validName.MatchString(n.name) {
			errs = append(errs, fmt.Errorf("pgwal: Config.%s %q: use 1 to 63 lower-case letters, digits and underscores", n.field, n.name))
		}
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("pgwal: Config.BatchSize is negative (%d): use a positive size, or 0 for the default 500", c.BatchSize))
	}
	for _, d := range []struct {
		field string
		d     time.Duration
	}{{"PublishTimeout", c.PublishTimeout}, {"StatusInterval", c.StatusInterval}, {"MinBackoff", c.MinBackoff}, {"MaxBackoff", c.MaxBackoff}} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("pgwal: Config.%s is negative (%v): use a positive duration, or 0 for the default", d.field, d.d))
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("pgwal: Config.MaxBackoff (%v) is below MinBackoff (%v): raise MaxBackoff", c.MaxBackoff, c.MinBackoff))
	}
	return errors.Join(errs...)
}

// Relay streams the events a master wrote into the write-ahead log from a
// logical replication slot and publishes them: see the package
// documentation. Start runs it; it survives broker and database outages by
// itself.
type Relay struct {
	cfg    Config
	conn   *pgconn.Config // the replication connection's
	runner startstop.Runner

	published atomic.Int64
	failures  atomic.Int64
	// oldest is the capture time (Unix µs) of the oldest event received
	// and not yet confirmed by the broker; 0 when none.
	oldest atomic.Int64
	// confirmed is the slot position the broker confirmed up to.
	confirmed atomic.Uint64
}

// NewRelay returns a relay; Start runs it.
func NewRelay(cfg *Config) (*Relay, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	pc, err := pgconn.ParseConfig(c.ConnString)
	if err != nil {
		return nil, fmt.Errorf("pgwal: Config.ConnString: %w", err)
	}
	pc.RuntimeParams["replication"] = "database"
	return &Relay{cfg: c, conn: pc}, nil
}

// Start runs the relay in the background until ctx ends or Stop is called.
// Started is closed once it streams from its slot (created if missing),
// the first time.
func (r *Relay) Start(ctx context.Context) error {
	return r.runner.Start(ctx, r.run)
}

// Started is closed once the relay streams from its slot, or has stopped.
func (r *Relay) Started() <-chan struct{} { return r.runner.Started() }

// Stop stops the relay and waits for it. It lets a batch being published
// finish (within PublishTimeout) and reports the confirmed position to the
// slot, so a clean stop sends nothing twice.
func (r *Relay) Stop() error { return r.runner.Stop() }

// Published returns how many events this relay has published.
func (r *Relay) Published() int64 { return r.published.Load() }

// Oldest returns when the oldest event this relay received and the broker
// has not yet confirmed was captured; zero when there is none. Events the
// relay has not read yet (a backlog after a restart) are not counted: see
// ReadStatus for the slot's own view.
func (r *Relay) Oldest() time.Time {
	if us := r.oldest.Load(); us != 0 {
		return time.UnixMicro(us).UTC()
	}
	return time.Time{}
}

// ConfirmedLSN returns the slot position up to which the broker confirmed
// every event, as PostgreSQL writes LSNs ("16/B374D848").
func (r *Relay) ConfirmedLSN() string { return pglogrepl.LSN(r.confirmed.Load()).String() }

// ErrSlotActive is wrapped by the relay's errors while another process
// streams its slot; the relay retries with backoff.
var ErrSlotActive = errors.New("pgwal: replication slot in use by another relay")

func (r *Relay) run(ctx context.Context, started func()) error {
	retry := backoff.Backoff{Min: r.cfg.MinBackoff, Max: r.cfg.MaxBackoff}
	log := r.cfg.Logger.With(slog.String("slot", r.cfg.Slot))
	for {
		published, began := r.published.Load(), time.Now()
		err := r.session(ctx, started)
		if ctx.Err() != nil {
			return nil
		}
		if retry.Failing() && (r.published.Load() > published || time.Since(began) > r.cfg.MaxBackoff) {
			// The session got events through, or streamed a good while,
			// before it failed: start the backoff again. (A session that
			// fails at once, as while the broker is down, keeps backing
			// off: each costs a replication connection that decodes from
			// the slot again.)
			log.InfoContext(ctx, "pgwal: relay was streaming again before this failure")
			retry.Reset()
		}
		r.failures.Add(1)
		wait := retry.Next()
		if errors.Is(err, ErrSlotActive) {
			log.InfoContext(ctx, "pgwal: the slot is streamed by another relay; waiting for it to stop", slog.Any("error", err), slog.Duration("retry_in", wait))
		} else {
			log.WarnContext(ctx, "pgwal: relay failed, retrying (PostgreSQL keeps the WAL of unconfirmed events meanwhile)", slog.Any("error", err), slog.Duration("retry_in", wait))
		}
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

// event is one message read from the slot, at position lsn; end is the
// transaction's end position on its last event, 0 on the others.
type event struct {
	row      sqldialect.OutboxRow
	lsn, end pglogrepl.LSN
}

// batch is events handed to the publisher; end is the position the slot
// may be advanced to once the broker confirmed them (0: no transaction
// ends in it).
type batch struct {
	events []event
	end    pglogrepl.LSN
}

// session streams the slot on one replication connection until it fails
// or ctx ends. Three goroutines share the work: the reader owns the
// connection (it receives messages and sends the status updates, so the
// connection is never used by two goroutines at once), this one batches
// committed transactions, and the publisher sends one batch at a time, in
// order, while the reader goes on reading.
func (r *Relay) session(ctx context.Context, streaming func()) error {
	conn, senderTimeout, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	streaming()

	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReading()
	rd := &reader{r: r, conn: conn, txs: make(chan []event, 16), done: make(chan error, 1),
		every: statusEvery(r.cfg.StatusInterval, senderTimeout)}
	rd.acked.Store(r.confirmed.Load())
	go func() { rd.done <- rd.run(readCtx) }()

	batches := make(chan batch)
	results := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for b := range batches {
			results <- r.publish(ctx, b)
		}
	})

	var (
		ready    []event
		inflight *batch
		failure  error
	)
	setOldest := func() {
		switch {
		case inflight != nil:
			r.oldest.Store(micros(inflight.events[0].row.CreatedAt))
		case len(ready) > 0:
			r.oldest.Store(micros(ready[0].row.CreatedAt))
		default:
			r.oldest.Store(0)
		}
	}
	txs := rd.txs
	for failure == nil {
		if inflight == nil && len(ready) > 0 {
			b := cut(&ready, r.cfg.BatchSize)
			inflight = &b
			batches <- b // the publisher waits for it
			setOldest()
		}
		// Hold back reading while much is waiting: the reader then stops
		// too, and the server waits for us.
		in := txs
		if len(ready) >= 4*r.cfg.BatchSize {
			in = nil
		}
		select {
		case evs := <-in:
			ready = append(ready, evs...)
			setOldest()
		case err := <-results:
			if err != nil {
				failure, inflight = err, nil
				break
			}
			if inflight.end != 0 {
				r.confirmed.Store(uint64(inflight.end))
				rd.acked.Store(uint64(inflight.end))
			}
			rd.handedOff.Add(-int64(len(inflight.events)))
			inflight = nil
			setOldest()
		case err := <-rd.done:
			failure = cmp.Or(err, errors.New("pgwal: the replication stream ended"))
			rd.done <- failure // for the wait below
		case <-ctx.Done():
			failure = ctx.Err()
		}
	}
	// Let a batch being published finish: its confirm moves the slot on,
	// so a clean stop sends nothing twice.
	close(batches)
	if inflight != nil {
		if err := <-results; err == nil && inflight.end != 0 {
			r.confirmed.Store(uint64(inflight.end))
			rd.acked.Store(uint64(inflight.end))
		}
	}
	wg.Wait()
	r.oldest.Store(0)
	stopReading()
	<-rd.done
	if !conn.IsClosed() {
		// The reader is gone: the connection is ours to report the last
		// confirmed position on.
		_ = rd.sendStatus(r.confirmed.Load())
	}
	if ctx.Err() != nil {
		return nil
	}
	return failure
}

// cut takes up to n events off the front of *ready as a batch.
func cut(ready *[]event, n int) batch {
	k := min(n, len(*ready))
	b := batch{events: (*ready)[:k:k]}
	for _, e := range b.events {
		if e.end != 0 {
			b.end = e.end
		}
	}
	*ready = (*ready)[k:]
	return b
}

// publish sends a batch, expires stamped now as the table relay does
// (cqrsync.RestampExpires), so both send the same bytes.
func (r *Relay) publish(ctx context.Context, b batch) error {
	h := r.cfg.Hooks
	publishAt := r.cfg.Now()
	msgs := make([]transport.Message, len(b.events))
	for i, e := range b.events {
		body := cqrsync.RestampExpires(nil, e.row.Body, e.row.CreatedAt, publishAt)
		msgs[i] = transport.Message{CQRSID: e.row.CQRSID, Queue: e.row.Queue, Body: body, Headers: e.row.Headers}
	}
	began := time.Now()
	// A stop lets the batch finish: it is bounded by PublishTimeout.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PublishTimeout)
	err := r.cfg.Publisher.Publish(pctx, msgs)
	cancel()
	failed := len(msgs)
	if err == nil {
		failed = 0
	} else if unroutableOnly(err) {
		// No replica is bound for these models (yet): the broker would drop
		// them however often they are sent, as for the table outbox.
		r.cfg.Logger.WarnContext(ctx, "pgwal: events routed to no queue (no replica bound for their cqrs_id); dropped", slog.String("cqrs_id", msgs[0].CQRSID))
		err, failed = nil, 0
	}
	if h != nil {
		h.OnPublish(ctx, hook.Publish{Events: len(msgs), Failed: failed, Duration: time.Since(began), Err: err})
	}
	if err != nil {
		return fmt.Errorf("pgwal: publish %d events (they will be read from the slot again): %w", len(msgs), err)
	}
	r.published.Add(int64(len(msgs)))
	return nil
}

// unroutableOnly is true when err says that every message the broker did
// not take was routed to no queue.
func unroutableOnly(err error) bool {
	var pe *transport.PublishError
	return errors.As(err, &pe) && len(pe.Failed) == 0 && len(pe.Unroutable) > 0
}

func micros(t time.Time) int64 { return t.UnixMicro() }

// connect opens the replication connection, creates the publication and
// the slot if missing, and starts streaming from the slot's confirmed
// position. It returns the connection's wal_sender_timeout too.
func (r *Relay) connect(ctx context.Context) (*pgconn.PgConn, time.Duration, error) {
	conn, err := pgconn.ConnectConfig(ctx, r.conn)
	if err != nil {
		return nil, 0, fmt.Errorf("pgwal: connect: %w", err)
	}
	timeout, err := r.prepare(ctx, conn)
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, 0, err
	}
	err = pglogrepl.StartReplication(ctx, conn, r.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names '" + r.cfg.Publication + "'",
			"messages 'true'",
		},
	})
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55006" { // object_in_use: another walsender has the slot
			return nil, 0, fmt.Errorf("%w: %s", ErrSlotActive, pe.Message)
		}
		return nil, 0, fmt.Errorf("pgwal: start streaming slot %s: %w", r.cfg.Slot, err)
	}
	return conn, timeout, nil
}

// prepare creates the publication and the slot unless they exist, and
// returns the connection's wal_sender_timeout (0: none). Two relays
// starting together may both try: the loser's "already exists" is fine.
func (r *Relay) prepare(ctx context.Context, conn *pgconn.PgConn) (time.Duration, error) {
	res, err := conn.Exec(ctx, "SELECT (SELECT count(*) FROM pg_publication WHERE pubname = '"+r.cfg.Publication+"'), "+
		"(SELECT count(*) FROM pg_replication_slots WHERE slot_name = '"+r.cfg.Slot+"' AND database = current_database()), "+
		"(SELECT count(*) FROM pg_replication_slots WHERE slot_name = '"+r.cfg.Slot+"'), current_setting('wal_level'), "+
		"(SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout')").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("pgwal: look up slot %s: %w", r.cfg.Slot, err)
	}
	row := res[0].Rows[0]
	pubs, slotsHere, slots, level := string(row[0]), string(row[1]), string(row[2]), string(row[3])
	ms, _ := strconv.ParseInt(string(row[4]), 10, 64) // in ms; unknown: 0, StatusInterval alone then
	if level != "logical" {
		return 0, fmt.Errorf("pgwal: wal_level is %q, and the WAL relay needs \"logical\": run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL (docs/wal.md)", level)
	}
	if slots != "0" && slotsHere == "0" {
		return 0, fmt.Errorf("pgwal: replication slot %s belongs to another database: choose another Config.Slot", r.cfg.Slot)
	}
	if pubs == "0" {
		_, err := conn.Exec(ctx, "CREATE PUBLICATION "+r.cfg.Publication).ReadAll()
		if err != nil && !isDuplicate(err) {
			return 0, fmt.Errorf("pgwal: create publication %s: %w", r.cfg.Publication, err)
		}
	}
	if slotsHere == "0" {
		_, err := pglogrepl.CreateReplicationSlot(ctx, conn, r.cfg.Slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		if err != nil && !isDuplicate(err) {
			return 0, fmt.Errorf("pgwal: create replication slot %s: %w", r.cfg.Slot, err)
		}
		if err == nil {
			r.cfg.Logger.InfoContext(ctx, "pgwal: created replication slot; PostgreSQL keeps WAL for it until a relay confirms it (drop it with pg_drop_replication_slot when unused)",
				slog.String("slot", r.cfg.Slot))
		}
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42710" // duplicate_object
}

// reader owns the replication connection: it reads messages, hands each
// committed transaction's events to the session, answers keepalives and
// reports the confirmed position.
type reader struct {
	r    *Relay
	conn *pgconn.PgConn
	txs  chan []event
	done chan error
	// acked is the position the broker confirmed up to (set by the session).
	acked atomic.Uint64
	// handedOff counts events handed to the session and not yet
	// confirmed: while it is 0 and no transaction is open, every commit
	// before the server's position has been published, so the slot may
	// move to it (the server's keepalives), and WAL that other databases
	// write is not kept for us.
	handedOff atomic.Int64
	reported  pglogrepl.LSN
	// every is how often it reports: see statusEvery.
	every time.Duration

	// The stream's state, which only run and its callees touch.
	open      bool // between BEGIN and COMMIT
	pending   []event
	retracted []pglogrepl.LSN // positions of the open transaction's retracted events
	server    pglogrepl.LSN   // the server's position after what it sent
	next      time.Time       // when the next status update is due
}

// statusEvery is how often a reader reports its position: every
// StatusInterval, and at least three times per wal_sender_timeout (0:
// none), since PostgreSQL ends a replication connection it has not heard
// from for that long (and asks for a status at half of it).
func statusEvery(interval, senderTimeout time.Duration) time.Duration {
	if senderTimeout > 0 {
		return min(interval, senderTimeout/3)
	}
	return interval
}

func (rd *reader) run(ctx context.Context) error {
	rd.next = time.Now().Add(rd.every)
	for {
		if err := rd.report(); err != nil {
			return err
		}
		data, err := rd.receive(ctx, rd.next)
		if err == nil && len(data) > 0 {
			err = rd.handle(ctx, data)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// report sends a status update when the position to report moved on or
// one is due. The position is the broker's (acked), or the server's when
// every event read has been confirmed.
func (rd *reader) report() error {
	pos := pglogrepl.LSN(rd.acked.Load())
	if !rd.open && rd.handedOff.Load() == 0 && rd.server > pos {
		pos = rd.server
	}
	if pos > rd.reported || !time.Now().Before(rd.next) {
		if err := rd.sendStatus(uint64(pos)); err != nil {
			return err
		}
		rd.next = time.Now().Add(rd.every)
	}
	return nil
}

// receive returns the next message's data, read until deadline: nil when
// none came in time or the message carries none.
func (rd *reader) receive(ctx context.Context, deadline time.Time) ([]byte, error) {
	rctx, cancel := context.WithDeadline(ctx, deadline)
	msg, err := rd.conn.ReceiveMessage(rctx)
	cancel()
	if err != nil {
		if pgconn.Timeout(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("pgwal: receive: %w", err)
	}
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		return m.Data, nil
	case *pgproto3.ErrorResponse:
		return nil, fmt.Errorf("pgwal: streaming: %w", pgconn.ErrorResponseToPgError(m))
	}
	return nil, nil
}

// handle handles one message of the stream.
func (rd *reader) handle(ctx context.Context, data []byte) error {
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		return rd.keepalive(data)
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("pgwal: xlog data: %w", err)
		}
		if len(xld.WALData) == 0 {
			return nil
		}
		switch pglogrepl.MessageType(xld.WALData[0]) {
		case pglogrepl.MessageTypeBegin:
			rd.open, rd.pending, rd.retracted = true, nil, nil
		case pglogrepl.MessageTypeMessage:
			var m pglogrepl.LogicalDecodingMessage
			if err := m.Decode(xld.WALData[1:]); err != nil {
				return fmt.Errorf("pgwal: message: %w", err)
			}
			if !m.Transactional || m.Prefix != sqldialect.WALMessagePrefix {
				return nil
			}
			if lsn, ok := sqldialect.WALRetraction(m.Content); ok {
				rd.retracted = append(rd.retracted, pglogrepl.LSN(lsn))
				return nil
			}
			row, err := sqldialect.ParseWALMessage(m.Content) // copies the body
			if err != nil {
				return fmt.Errorf("pgwal: message at %s: %w", m.LSN, err)
			}
			rd.pending = append(rd.pending, event{row: row, lsn: m.LSN})
		case pglogrepl.MessageTypeCommit:
			var c pglogrepl.CommitMessage
			if err := c.Decode(xld.WALData[1:]); err != nil {
				return fmt.Errorf("pgwal: commit: %w", err)
			}
			rd.open = false
			rd.server = max(rd.server, c.TransactionEndLSN)
			pending := rd.pending
			rd.pending = nil
			if len(rd.retracted) > 0 {
				// Master.Insert took these events back in their
				// transaction (its prediction of the row was wrong).
				pending = slices.DeleteFunc(pending, func(e event) bool { return slices.Contains(rd.retracted, e.lsn) })
				rd.retracted = nil
			}
			if len(pending) == 0 {
				return nil
			}
			pending[len(pending)-1].end = c.TransactionEndLSN
			return rd.handOff(ctx, pending)
		}
	}
	return nil
}

// keepalive notes the server's position from a keepalive, and makes the
// next status update due now when the server asks for one.
func (rd *reader) keepalive(data []byte) error {
	ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
	if err != nil {
		return fmt.Errorf("pgwal: keepalive: %w", err)
	}
	rd.server = max(rd.server, ka.ServerWALEnd)
	if ka.ReplyRequested {
		rd.next = time.Time{}
	}
	return nil
}

// handOff gives a committed transaction's events to the session. While the
// session is busy (a slow broker, a big transaction before it), the reader
// keeps the connection alive: PostgreSQL ends a replication connection it
// has not heard from for wal_sender_timeout, and streaming again would
// start from the slot's confirmed position and send the backlog again, for
// ever if handing it off always takes longer. So it reports the broker's
// confirmed position whenever a status is due. It reads nothing meanwhile
// (the next messages are data, to be handled in order, and the server's
// memory, not ours, holds them): the keepalives waiting behind them need
// no answer, since the server asks for one only after half its timeout
// without a status, and statusEvery reports more often.
func (rd *reader) handOff(ctx context.Context, evs []event) error {
	rd.handedOff.Add(int64(len(evs)))
	for {
		due := time.NewTimer(time.Until(rd.next))
		select {
		case rd.txs <- evs:
			due.Stop()
			return nil
		case <-ctx.Done():
			due.Stop()
			return ctx.Err()
		case <-due.C:
		}
		if err := rd.report(); err != nil {
			return err
		}
	}
}

// sendStatus reports pos as written and flushed: PostgreSQL may then
// recycle the WAL before it.
func (rd *reader) sendStatus(pos uint64) error {
	lsn := max(pglogrepl.LSN(pos), rd.reported)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), rd.conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: lsn})
	if err != nil {
		return fmt.Errorf("pgwal: report position: %w", err)
	}
	rd.reported = lsn
	return nil
}

package cqrsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cqrsync/cqrsync/internal/startstop"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// Self-healing: a replica that sees a change it cannot have seen whole
// asks the master to send the key again.
const (
	// HeaderResendQueue, on an event, names the queue where the master
	// that captured it takes resend requests (MasterConfig.ResendQueue). A
	// consumer asks only masters whose events carry it: never a Django
	// service.
	HeaderResendQueue = "cqrsync-resend-queue"
	// HeaderResent marks the SYNC or DELETE a master sent in answer to a
	// resend request; its failure asks nothing again.
	HeaderResent = "cqrsync-resent"
	// ResendCQRSID is the routing name of resend requests: they travel as
	// cqrs.<resend queue>.cqrsync_resend, which only a Resender binds.
	ResendCQRSID = "cqrsync_resend"
	// DefaultResendInterval is ConsumerConfig.ResendInterval's default.
	DefaultResendInterval = time.Minute
)

// ResendRequest is the body of a resend request: a replica asks the master
// of CQRSID to send the key PK to its Queue again.
type ResendRequest struct {
	// CQRSID is the model.
	CQRSID string `json:"cqrs_id"`
	// PK is the key, as the event carried it.
	PK json.RawMessage `json:"instance_pk"`
	// Queue is the asking replica's queue: the answer goes there alone.
	Queue string `json:"queue"`
	// Reason says what the replica saw: "gap" (a revision jump, or a key
	// first seen past revision 0) or "dead letter".
	Reason string `json:"reason"`
}

// resendLimiter remembers when each key was last asked for, so that a key
// is asked at most once per interval.
type resendLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
}

// allow reports whether key may be asked for now, and records it if so.
func (l *resendLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		return false
	}
	if len(l.last) >= 10000 { // forget the keys asked longer ago than the interval
		for k, t := range l.last {
			if now.Sub(t) >= l.interval {
				delete(l.last, k)
			}
		}
	}
	l.last[key] = now
	return true
}

// askResend sends a resend request for p's key to the queue of the master
// that captured it, if that master takes them (see HeaderResendQueue),
// the consumer has resends on, and the key was not asked for within
// ResendInterval.
func (c *Consumer) askResend(ctx context.Context, p *Payload, reason string) {
	master := p.Headers[HeaderResendQueue]
	if c.cfg.NoResend || master == "" || p.Headers[HeaderResent] != "" || !validName(master) {
		return
	}
	if _, ok := c.cfg.Replica.Model(p.CQRSID); !ok {
		return
	}
	pk, err := AppendJSON(nil, p.InstancePK)
	if err != nil {
		return
	}
	if !c.resends.allow(p.CQRSID+"\x00"+string(pk), c.cfg.Now()) {
		return
	}
	body, _ := json.Marshal(ResendRequest{CQRSID: p.CQRSID, PK: pk, Queue: c.cfg.Queue, Reason: reason})
	c.cfg.Logger.InfoContext(ctx, "cqrsync: asking the master to resend a key", slog.String("cqrs_id", p.CQRSID),
		slog.String("pk", string(pk)), slog.String("reason", reason), slog.String("master_queue", master))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.cfg.Publisher.Publish(pctx, []transport.Message{{CQRSID: ResendCQRSID, Queue: master, Body: body}}); err != nil {
		c.cfg.Logger.WarnContext(ctx, "cqrsync: resend request failed; the key stays as it is until its next change", slog.Any("error", err))
		return
	}
	c.resendsAsked.Add(1)
}

// ResenderConfig configures a [Resender].
type ResenderConfig struct {
	// Subscriber delivers the master's resend queue. Required.
	Subscriber transport.Subscriber
	// Queue is the master's resend queue: MasterConfig.ResendQueue.
	// Required.
	Queue string
	// Logger receives the resender's logs. Default slog.Default().
	Logger *slog.Logger
}

// ResendAnswerer answers one resend request: a *Master of any
// transaction type is one ([Master.AnswerResend]).
type ResendAnswerer interface {
	// AnswerResend sends the key a request body names to the asking queue.
	AnswerResend(ctx context.Context, request []byte) error
}

// Resender answers the resend requests of replicas (see
// MasterConfig.ResendQueue) that reach the master's resend queue, with
// [Master.AnswerResend]. Requests are advisory: each is acknowledged
// whether or not it could be answered (the replica asks again at its next
// sign of a gap).
type Resender struct {
	m      ResendAnswerer
	cfg    ResenderConfig
	runner startstop.Runner
}

// NewResender returns a Resender answering with m, a *Master.
func NewResender(m ResendAnswerer, cfg *ResenderConfig) (*Resender, error) {
	if m == nil || cfg == nil || cfg.Subscriber == nil || !validName(cfg.Queue) {
		return nil, errors.New("cqrsync: NewResender: give the master, a Subscriber and the Queue of MasterConfig.ResendQueue (a name without '.', '*', '#' or spaces)")
	}
	c := *cfg
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return &Resender{m: m, cfg: c}, nil
}

// Start subscribes to the resend queue and answers requests until Stop or
// ctx ends.
func (r *Resender) Start(ctx context.Context) error { return r.runner.Start(ctx, r.run) }

// Started is closed once the resender has subscribed (or ended).
func (r *Resender) Started() <-chan struct{} { return r.runner.Started() }

// Stop stops the resender and waits for it.
func (r *Resender) Stop() error { return r.runner.Stop() }

func (r *Resender) run(ctx context.Context, started func()) error {
	sub, err := r.cfg.Subscriber.Subscribe(ctx, &transport.SubscribeParams{Queue: r.cfg.Queue, CQRSIDs: []string{ResendCQRSID}})
	if err != nil {
		return fmt.Errorf("cqrsync: resender: subscribe %s: %w", r.cfg.Queue, err)
	}
	defer sub.Close()
	started()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-sub.Deliveries():
			if !ok {
				return nil
			}
			if err := r.m.AnswerResend(ctx, d.Body); err != nil {
				r.cfg.Logger.WarnContext(ctx, "cqrsync: resend request not answered", slog.Any("error", err))
			}
			// A request is advisory: answered or not, it is settled, and
			// the replica asks again on its next sign of a gap.
			_ = sub.Ack(context.WithoutCancel(ctx), d.ID)
		}
	}
}

type resentKey struct{}

// AnswerResend answers a resend request (a [ResendRequest] as JSON): it
// sends the key's current row as a SYNC to the asking replica's queue
// alone, or, if the row is gone, a DELETE with the key's tombstone
// revision (nothing for a key without tombstone), through the outbox, and
// wakes the relay. The answer carries HeaderResent, so its failure asks
// nothing again.
func (m *Master[TTx]) AnswerResend(ctx context.Context, request []byte) error {
	var req ResendRequest
	if err := json.Unmarshal(request, &req); err != nil || len(req.PK) == 0 || !validName(req.Queue) {
		return fmt.Errorf("cqrsync: malformed resend request %q", request)
	}
	mm, err := m.model(req.CQRSID)
	if err != nil {
		return err
	}
	ctx = context.WithValue(ctx, resentKey{}, true)
	ex := m.drv.Pool()
	filter := fmt.Sprintf(`{%q: %s}`, mm.PK, req.PK)
	n, err := m.SyncQuery(ctx, ex, mm.CQRSID, &SyncOpts{Filter: filter, Queue: req.Queue})
	if err != nil {
		return err
	}
	if n == 0 {
		if err := m.resendDelete(ctx, ex, mm, req); err != nil {
			return err
		}
	}
	m.Committed()
	return nil
}

// resendDelete sends the DELETE of a key the master no longer has, with
// its tombstone's revision, to the asking queue; a key without tombstone
// (never there, or purged) gets nothing.
func (m *Master[TTx]) resendDelete(ctx context.Context, ex sqldialect.Executor, mm *MasterModel, req ResendRequest) error {
	ti, err := m.table(ctx, ex, mm)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(req.PK))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	wire, err := WireValue(ti.types[mm.PK], raw)
	if err != nil {
		return &ModelError{CQRSID: mm.CQRSID, PK: raw, Err: err}
	}
	pk, err := ColumnValue(ti.types[mm.PK], wire)
	if err != nil {
		return &ModelError{CQRSID: mm.CQRSID, PK: raw, Err: err}
	}
	v, err := m.dialect.KeyVersion(ctx, ex, &sqldialect.KeyVersionParams{Table: mm.Table, PKColumn: mm.PK, PK: pk, CQRSID: mm.CQRSID, Key: keyString(wire)})
	if err != nil || v.TombstoneRevision < 0 || v.Revision >= 0 {
		return err
	}
	now := m.now()
	data := Object{{Key: "id", Value: wire}, {Key: RevisionField, Value: v.TombstoneRevision}, {Key: UpdatedField, Value: FormatDateTime(now)}}
	ev, ok, err := m.event(ctx, mm, SignalDelete, masterRow{pk: wire, all: data}, data, nil, now, req.Queue)
	if err != nil || !ok {
		return err
	}
	return m.enqueue(ctx, ex, []sqldialect.OutboxRow{ev})
}

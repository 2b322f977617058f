package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cqrsync/cqrsync/transport"
)

// errRevoked is why a delivery whose partition went to another consumer
// cannot be settled.
var errRevoked = errors.New("kafka: the delivery's partition was reassigned (rebalance); it is delivered again to the partition's new consumer")

// tp names a partition.
type tp struct {
	topic string
	part  int32
}

// partition is a subscription's view of one assigned partition: the records
// it polled and has not committed past, in offset order.
type partition struct {
	tp
	revoked   bool
	revoking  bool     // being handed over: deliver nothing more from it
	inflight  []*entry // tracked, oldest first; the done prefix is dropped on commit
	next      int64    // offset after the last tracked record; -1 before the first
	committed int64    // last committed offset; -1 when unknown
	// delivered is the highest offset handed out, and redeliveredUpTo the
	// highest an earlier owner handed out (from its commit's metadata):
	// deliveries up to it are marked Redelivered.
	delivered, redeliveredUpTo int64
}

// commitPos is the offset to commit: the first record not settled.
func (p *partition) commitPos() int64 {
	for i, e := range p.inflight {
		if !e.done {
			p.inflight = p.inflight[i:]
			return e.offset
		}
	}
	p.inflight = p.inflight[:0]
	return p.next
}

// entry is one tracked record.
type entry struct {
	part   *partition
	offset int64
	done   bool // settled (or filtered out): the commit may pass it
	rec    *kgo.Record
	msg    transport.Message
	meta   meta
	id     uint64 // while delivered and unsettled
	redel  bool
	timer  *time.Timer // a retry waiting for its not-before
}

// subscription is one consumer group member reading a replica queue's
// topics.
type subscription struct {
	t      *Transport
	p      transport.SubscribeParams
	group  string
	qtopic string
	bound  map[string]bool
	cl     *kgo.Client
	log    *slog.Logger

	ctx        context.Context
	cancel     context.CancelFunc
	stopAfter  func() bool // under mu
	deliveries chan transport.Delivery

	mu      sync.Mutex
	parts   map[tp]*partition
	pending map[uint64]*entry // delivered, unsettled
	ready   []*entry          // due, waiting for the window
	held    int               // retries waiting for their not-before
	paused  bool              // the queue topic's fetches, for too many held
	nextID  uint64
	closed  bool

	wake    chan struct{} // sender: ready or window changed
	settled chan struct{} // a revoke waiting for deliveries to be settled
	space   chan struct{} // poller: window space
	commit  chan struct{} // committer: something settled

	wg        sync.WaitGroup
	closeOnce sync.Once
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Subscribe declares the queue (its topic, its dead-letter topic, the
// broadcast topics and the consumer group's starting offsets) and joins the
// queue's consumer group. See the package documentation.
func (t *Transport) Subscribe(ctx context.Context, params *transport.SubscribeParams) (transport.Subscription, error) {
	if params == nil {
		return nil, errors.New("kafka: Subscribe: params is nil")
	}
	if err := params.Validate(); err != nil {
		return nil, err
	}
	p := params.WithDefaults()
	var errs []error
	for _, n := range append([]string{p.Queue, p.DeadLetterQueue}, p.CQRSIDs...) {
		if err := topicName("queue or CQRS ID", n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if t.isClosed() {
		return nil, t.closedErr("subscribe")
	}
	topics, err := t.declare(ctx, &p)
	if err != nil {
		return nil, err
	}
	s := &subscription{
		t: t, p: p, group: t.cfg.group(p.Queue), qtopic: t.cfg.queueTopic(p.Queue),
		bound: make(map[string]bool, len(p.CQRSIDs)), log: t.cfg.Logger.With(slog.String("queue", p.Queue)),
		deliveries: make(chan transport.Delivery),
		parts:      make(map[tp]*partition), pending: make(map[uint64]*entry),
		wake: make(chan struct{}, 1), space: make(chan struct{}, 1), commit: make(chan struct{}, 1), settled: make(chan struct{}, 1),
	}
	for _, id := range p.CQRSIDs {
		s.bound[id] = true
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(s.group), kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		// Partitions without a committed offset are new (declare committed
		// the others): read them whole.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	}
	if d := t.cfg.HeartbeatInterval; d > 0 {
		opts = append(opts, kgo.HeartbeatInterval(d))
	}
	if d := t.cfg.SessionTimeout; d > 0 {
		opts = append(opts, kgo.SessionTimeout(d))
	}
	if s.cl, err = t.cfg.newClient(opts...); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		s.cancel()
		s.cl.Close()
		return nil, t.closedErr("subscribe")
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	s.wg.Add(3)
	go s.poll()
	go s.send()
	go s.commitLoop()
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	s.mu.Lock()
	s.stopAfter = stop
	s.mu.Unlock()
	return s, nil
}

// declare creates the queue's topics and, for partitions of its group that
// have no committed offset, commits their end: the queue receives what is
// published from now on, whether or not a consumer is running, as a
// RabbitMQ queue does once declared and bound. It returns the topics the
// group reads.
func (t *Transport) declare(ctx context.Context, p *transport.SubscribeParams) ([]string, error) {
	topics := []string{t.cfg.queueTopic(p.Queue)}
	for _, id := range p.CQRSIDs {
		if b := t.cfg.broadcastTopic(id); !slices.Contains(topics, b) {
			topics = append(topics, b)
		}
	}
	if err := t.ensureTopics(ctx, t.cfg.Partitions, nil, topics...); err != nil {
		return nil, err
	}
	compact := "compact"
	if err := t.ensureTopics(ctx, 1, map[string]*string{"cleanup.policy": &compact}, t.cfg.deadTopic(p.DeadLetterQueue)); err != nil {
		return nil, err
	}
	group := t.cfg.group(p.Queue)
	committed, err := t.adm.FetchOffsetsForTopics(ctx, group, topics...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // a new group
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: fetch the offsets of group %q: %w", group, err)
	}
	ends, err := t.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("kafka: list the end offsets of %v: %w", topics, err)
	}
	start := make(kadm.Offsets)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			return
		}
		start.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	if len(start) == 0 {
		return topics, nil
	}
	resps, err := t.adm.CommitOffsets(ctx, group, start)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		// A group with running members refuses commits from outside; its
		// members start new partitions at their beginning.
		t.cfg.Logger.DebugContext(ctx, "kafka: could not commit the starting offsets of a group", slog.String("group", group), slog.Any("error", err))
	}
	return topics, nil
}

// assigned records the partitions the group gave this member, with the
// highest offset their previous owner delivered.
func (s *subscription) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	var topics []string
	for topic := range assigned {
		topics = append(topics, topic)
	}
	committed, err := s.t.adm.FetchOffsetsForTopics(ctx, s.group, topics...)
	if err != nil {
		s.log.WarnContext(ctx, "kafka: cannot read the committed offsets' metadata; redeliveries will not be marked", slog.Any("error", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, parts := range assigned {
		for _, part := range parts {
			p := &partition{tp: tp{topic, part}, next: -1, committed: -1, delivered: -1, redeliveredUpTo: -1}
			if c, ok := committed.Lookup(topic, part); ok && c.Err == nil {
				p.committed = c.At
				p.redeliveredUpTo = parseDelivered(c.Metadata)
			}
			s.parts[p.tp] = p
		}
	}
}

// revoked hands partitions over to another member: it stops delivering
// from them, waits (up to Config.RevokeWait) for their outstanding
// deliveries to be settled, so that the new owner does not get them again,
// commits, and forgets them. Deliveries settled later fail with a
// rebalance error, and the new owner delivers them again.
func (s *subscription) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	closed := s.closed
	for topic, parts := range revoked {
		for _, part := range parts {
			if p := s.parts[tp{topic, part}]; p != nil {
				p.revoking = true
			}
		}
	}
	s.mu.Unlock()
	if !closed {
		s.awaitSettled(ctx)
		if err := s.commitNow(ctx, revoked); err != nil {
			s.log.WarnContext(ctx, "kafka: commit before a rebalance failed; the new owner will see some settled events again", slog.Any("error", err))
		}
	}
	s.drop(revoked)
}

// awaitSettled waits until no delivery of a revoking partition is
// outstanding, for at most Config.RevokeWait or until the subscription
// ends.
func (s *subscription) awaitSettled(ctx context.Context) {
	timer := time.NewTimer(s.t.cfg.RevokeWait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		outstanding := 0
		for _, e := range s.pending {
			if e.part.revoking {
				outstanding++
			}
		}
		s.mu.Unlock()
		if outstanding == 0 {
			return
		}
		select {
		case <-s.settled:
		case <-timer.C:
			s.log.WarnContext(ctx, "kafka: partitions handed over with deliveries unsettled; the new owner delivers them again", slog.Int("unsettled", outstanding), slog.Duration("waited", s.t.cfg.RevokeWait))
			return
		case <-s.ctx.Done():
			return
		case <-ctx.Done():
			return
		}
	}
}

// lost forgets partitions this member lost without a rebalance (its session
// expired): their settled offsets can no longer be committed.
func (s *subscription) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) { s.drop(lost) }

func (s *subscription) drop(parts map[string][]int32) {
	s.mu.Lock()
	defer func() {
		// The dropped partitions' retries no longer count: resume the queue
		// topic if they were what paused it (no due() would).
		resume := s.paused && s.held <= s.t.cfg.MaxHeld/2
		if resume {
			s.paused = false
		}
		s.mu.Unlock()
		if resume {
			s.cl.ResumeFetchTopics(s.qtopic)
		}
		poke(s.wake)
	}()
	for topic, ps := range parts {
		for _, part := range ps {
			p := s.parts[tp{topic, part}]
			if p == nil {
				continue
			}
			p.revoked = true
			for _, e := range p.inflight {
				if e.timer != nil && e.timer.Stop() {
					s.held--
				}
			}
			delete(s.parts, p.tp)
		}
	}
}

// metadataPrefix starts the metadata of this transport's commits.
const metadataPrefix = "cqrsync:delivered="

func parseDelivered(md string) int64 {
	v, ok := strings.CutPrefix(md, metadataPrefix)
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// room is how many more records the poller may take.
func (s *subscription) room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p.Prefetch - len(s.pending) - len(s.ready)
}

// poll takes records from the group's partitions, up to the prefetch
// window, and tracks them.
func (s *subscription) poll() {
	defer s.wg.Done()
	for {
		n := s.room()
		if n <= 0 {
			select {
			case <-s.space:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		fs := s.cl.PollRecords(s.ctx, n)
		if s.ctx.Err() != nil || fs.IsClientClosed() {
			s.cl.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.log.WarnContext(s.ctx, "kafka: fetch failed; retrying", slog.String("topic", topic), slog.Int("partition", int(part)), slog.Any("error", err))
			}
		})
		now := s.t.cfg.Now()
		s.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) { s.track(r, now) })
		pause := !s.paused && s.held > s.t.cfg.MaxHeld
		if pause {
			s.paused = true
		}
		s.mu.Unlock()
		if pause {
			s.cl.PauseFetchTopics(s.qtopic)
		}
		s.cl.AllowRebalance()
		poke(s.wake)
		poke(s.commit)
	}
}

// track records r and queues it for delivery if this queue takes it. The
// caller holds s.mu.
func (s *subscription) track(r *kgo.Record, now time.Time) {
	p := s.parts[tp{r.Topic, r.Partition}]
	if p == nil || p.revoked || (p.next >= 0 && r.Offset < p.next) {
		return
	}
	p.next = r.Offset + 1
	m, md := decode(r)
	e := &entry{part: p, offset: r.Offset, rec: r, msg: m, meta: md}
	p.inflight = append(p.inflight, e)
	if !s.takes(r.Topic, &e.msg, md) || md.expires > 0 && now.UnixMilli() >= md.expires {
		e.done = true
		return
	}
	e.redel = md.redelivered || md.delays > 0 || r.Offset <= p.redeliveredUpTo
	if d := time.UnixMilli(md.notBefore).Sub(now); md.notBefore > 0 && d > 0 {
		s.held++
		e.timer = time.AfterFunc(d, func() { s.due(e) })
		return
	}
	s.ready = append(s.ready, e)
}

// due queues a retry whose not-before passed.
func (s *subscription) due(e *entry) {
	s.mu.Lock()
	s.held--
	resume := s.paused && s.held <= s.t.cfg.MaxHeld/2
	if resume {
		s.paused = false
	}
	if !e.part.revoked && !s.closed {
		s.ready = append(s.ready, e)
	}
	s.mu.Unlock()
	if resume {
		s.cl.ResumeFetchTopics(s.qtopic)
	}
	poke(s.wake)
}

// takes reports whether this queue receives m, read from topic: a broadcast
// of a bound model, a message aimed at this queue for a bound model, or an
// IntoQueue message.
func (s *subscription) takes(topic string, m *transport.Message, md meta) bool {
	if md.removed {
		return false
	}
	if topic == s.qtopic {
		return m.IntoQueue || s.bound[m.CQRSID]
	}
	return m.Queue == "" && s.bound[m.CQRSID]
}

// send hands ready records to the deliveries channel while the prefetch
// window has room.
func (s *subscription) send() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		var (
			d  transport.Delivery
			ok bool
		)
		for len(s.ready) > 0 && len(s.pending) < s.p.Prefetch {
			e := s.ready[0]
			s.ready[0] = nil
			s.ready = s.ready[1:]
			if e.part.revoked || e.part.revoking {
				continue
			}
			s.nextID++
			e.id = s.nextID
			s.pending[e.id] = e
			e.part.delivered = max(e.part.delivered, e.offset)
			d = s.delivery(e)
			ok = true
			break
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		select {
		case s.deliveries <- d:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *subscription) delivery(e *entry) transport.Delivery {
	m := e.msg
	if e.rec.Topic != s.qtopic {
		m.Queue = ""
	}
	m.Body = slices.Clip(m.Body)
	attempt := max(e.meta.attempt, 0) + 1
	if e.offset <= e.part.redeliveredUpTo {
		attempt++
	}
	return transport.Delivery{Message: m, ID: e.id, Redelivered: e.redel, Attempt: attempt, Delays: e.meta.delays}
}

// Deliveries returns the channel of incoming messages.
func (s *subscription) Deliveries() <-chan transport.Delivery { return s.deliveries }

// Err is nil: the franz-go client recovers from lost connections by itself,
// and the subscription ends only by Close or its context.
func (s *subscription) Err() error { return nil }

// take removes ids from the pending deliveries and returns their entries,
// with an error for each unknown, settled or revoked one.
func (s *subscription) take(op string, ids []uint64) ([]*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("kafka: %s: %w", op, transport.ErrClosed)
	}
	es := make([]*entry, 0, len(ids))
	var errs []error
	for _, id := range ids {
		e := s.pending[id]
		if e == nil {
			errs = append(errs, fmt.Errorf("kafka: %s: delivery %d is unknown or already settled", op, id))
			continue
		}
		delete(s.pending, id)
		if e.part.revoked {
			errs = append(errs, fmt.Errorf("kafka: %s: delivery %d: %w", op, id, errRevoked))
			continue
		}
		es = append(es, e)
	}
	return es, errors.Join(errs...)
}

// settle marks es done, so that the next commit may pass them.
func (s *subscription) settle(es []*entry) {
	s.mu.Lock()
	for _, e := range es {
		e.done = true
		e.rec, e.msg = nil, transport.Message{}
	}
	s.mu.Unlock()
	poke(s.space)
	poke(s.wake)
	poke(s.commit)
	poke(s.settled)
}

// Ack settles deliveries: their offsets are committed once every record
// before them in their partition is settled too.
func (s *subscription) Ack(_ context.Context, ids ...uint64) error {
	es, err := s.take("ack", ids)
	s.settle(es)
	return err
}

// Nack settles deliveries as not processed. With requeue, a copy of each
// goes to the queue's topic first, to be delivered again; see NackDelay.
func (s *subscription) Nack(ctx context.Context, requeue bool, ids ...uint64) error {
	if requeue {
		return s.NackDelay(ctx, 0, ids...)
	}
	es, err := s.take("nack", ids)
	s.settle(es)
	return err
}

// NackDelay publishes a copy of each delivery to the queue's topic with a
// not-before of now plus delay (0 or less: at once), and settles the
// delivery once the brokers have the copy. A delivery whose copy fails stays
// unsettled, and the error says so.
func (s *subscription) NackDelay(ctx context.Context, delay time.Duration, ids ...uint64) error {
	es, err := s.take("nack", ids)
	if len(es) == 0 {
		return err
	}
	now := s.t.cfg.Now()
	recs := make([]*kgo.Record, len(es))
	for i, e := range es {
		extra := []kgo.RecordHeader{
			intHeader(hAttempt, int64(s.delivery(e).Attempt)),
			{Key: hRedelivered, Value: []byte("1")},
		}
		delays := e.meta.delays
		if delay > 0 {
			delays++
			extra = append(extra, intHeader(hNotBefore, ceilMilli(now.Add(delay))))
		}
		if delays > 0 {
			extra = append(extra, intHeader(hDelays, int64(delays)))
		}
		if e.meta.expires > 0 {
			extra = append(extra, intHeader(hExpires, e.meta.expires))
		}
		m := e.msg
		m.Expiration = 0
		if e.rec.Topic != s.qtopic {
			m.Queue = "" // a broadcast stays one
		}
		recs[i] = newRecord(s.qtopic, e.rec.Key, &m, now, extra...)
	}
	var (
		done   = es[:0:0]
		failed []error
	)
	for i, res := range s.t.cl.ProduceSync(ctx, recs...) {
		if res.Err != nil {
			failed = append(failed, fmt.Errorf("kafka: nack: copy delivery %d to %s: %w; it stays unsettled", es[i].id, s.qtopic, res.Err))
			continue
		}
		done = append(done, es[i])
	}
	if len(failed) > 0 {
		s.mu.Lock()
		for _, e := range es {
			if !slices.Contains(done, e) && !s.closed {
				s.pending[e.id] = e
			}
		}
		s.mu.Unlock()
	}
	s.settle(done)
	return errors.Join(append([]error{err}, failed...)...)
}

// commitLoop commits settled offsets at most every CommitInterval.
func (s *subscription) commitLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.commit:
		case <-s.ctx.Done():
			return
		}
		if err := s.commitNow(s.ctx, nil); err != nil && s.ctx.Err() == nil {
			s.log.WarnContext(s.ctx, "kafka: offset commit failed; retrying with the next", slog.Any("error", err))
			poke(s.commit)
		}
		t := time.NewTimer(s.t.cfg.CommitInterval)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

// commitNow commits the settled prefix of the partitions in only (all
// assigned when nil) that advanced, or all of them when final, with the
// highest delivered offset as metadata.
func (s *subscription) commitNow(ctx context.Context, only map[string][]int32) error {
	return s.commitParts(ctx, only, false)
}

func (s *subscription) commitParts(ctx context.Context, only map[string][]int32, final bool) error {
	if member, _ := s.cl.GroupMetadata(); member == "" {
		return nil // not in the group (yet): nothing is assigned
	}
	type planned struct {
		p   *partition
		pos int64
	}
	var plan []planned
	offsets := map[string]map[int32]kgo.EpochOffset{}
	metadata := map[tp]string{}
	s.mu.Lock()
	for _, p := range s.parts {
		if only != nil && !slices.Contains(only[p.topic], p.part) {
			continue
		}
		pos := p.commitPos()
		if pos < 0 || (pos <= p.committed && !final && only == nil) {
			continue
		}
		plan = append(plan, planned{p, pos})
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[p.topic][p.part] = kgo.EpochOffset{Epoch: -1, Offset: pos}
		metadata[p.tp] = metadataPrefix + strconv.FormatInt(max(p.delivered, p.redeliveredUpTo), 10)
	}
	s.mu.Unlock()
	if len(plan) == 0 {
		return nil
	}
	// The metadata says how far this member delivered, so that the next
	// owner marks what it delivers again as Redelivered.
	ctx = kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				if md, ok := metadata[tp{t.Topic, t.Partitions[j].Partition}]; ok {
					t.Partitions[j].Metadata = &md
				}
			}
		}
		return nil
	})
	var errs []error
	ok := map[tp]bool{}
	s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka: commit offsets of group %q: %w", s.group, err))
			return
		}
		for _, t := range resp.Topics {
			for _, pt := range t.Partitions {
				if err := kerr.ErrorForCode(pt.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("kafka: commit %s[%d] of group %q: %w", t.Topic, pt.Partition, s.group, err))
					continue
				}
				ok[tp{t.Topic, pt.Partition}] = true
			}
		}
	})
	s.mu.Lock()
	for _, pl := range plan {
		if ok[pl.p.tp] {
			pl.p.committed = max(pl.p.committed, pl.pos)
		}
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Close leaves the consumer group after committing what was settled, so
// that unsettled deliveries go to the queue's next consumer, marked
// Redelivered. Acks after Close return [transport.ErrClosed].
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		if s.stopAfter != nil {
			s.stopAfter()
		}
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.commitParts(ctx, nil, true); err != nil {
			s.log.WarnContext(ctx, "kafka: final offset commit failed; settled events will be delivered again", slog.Any("error", err))
		}
		s.mu.Lock()
		s.closed = true
		for _, p := range s.parts {
			for _, e := range p.inflight {
				if e.timer != nil {
					e.timer.Stop()
				}
			}
		}
		s.mu.Unlock()
		s.cl.Close()
		close(s.deliveries)
		s.t.mu.Lock()
		delete(s.t.subs, s)
		s.t.mu.Unlock()
	})
	return nil
}

// ceilMilli is t in Unix milliseconds, rounded up: a retry is never
// delivered before its delay.
func ceilMilli(t time.Time) int64 {
	return (t.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}

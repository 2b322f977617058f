package memory

import (
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// entryState says where a message is.
type entryState uint8

const (
	// stateReady: in its queue's ready list, waiting for a consumer.
	stateReady entryState = iota
	// stateUnacked: handed to a subscription, not settled yet.
	stateUnacked
	// stateGone: acked, dropped, expired, purged or removed from a
	// dead-letter queue. A gone entry may still sit in a ready list (removal
	// from the middle is lazy); it is skipped there and never comes back.
	stateGone
	// stateDelayed: nacked with a delay (Config.DelayedRedelivery); in no
	// list until its timer puts it back at the end of the ready list.
	stateDelayed
)

// entry is one message in one queue. A message routed to several queues has
// one entry per queue (sharing the immutable copy of the body).
type entry struct {
	msg         transport.Message // Body and Headers are the broker's own copies, never handed out
	seq         uint64            // broker-wide enqueue order, to put requeued messages back in order
	enqueued    time.Time         // set only when msg.Expiration > 0
	redelivered bool
	attempts    int // deliveries so far, for transport.Delivery.Attempt
	delays      int // NackDelay returns so far, for transport.Delivery.Delays
	state       entryState
}

// expired reports whether e has outlived its Expiration at now.
func (e *entry) expired(now time.Time) bool {
	return e.msg.Expiration > 0 && !now.Before(e.enqueued.Add(e.msg.Expiration))
}

// delivery builds what a subscriber receives: fresh copies of the body and
// headers, so a consumer that scribbles on them cannot change a redelivery or
// another queue's copy.
//
// It reads only e.msg, which never changes after the entry is created, so it
// runs without the broker lock; redelivered, attempt and delays are
// captured under the lock.
func (e *entry) delivery(id uint64, redelivered bool, attempt, delays int) transport.Delivery {
	m := e.msg
	m.Body = append([]byte(nil), e.msg.Body...)
	m.Headers = cloneHeaders(e.msg.Headers)
	return transport.Delivery{Message: m, ID: id, Redelivered: redelivered, Attempt: attempt, Delays: delays}
}

func cloneHeaders(h map[string]string) map[string]string {
	if h == nil {
		return nil
	}
	c := make(map[string]string, len(h))
	for k, v := range h {
		c[k] = v
	}
	return c
}

// queue is a durable queue: it lives as long as the broker.
type queue struct {
	name      string
	ready     deque
	readyN    int // entries in ready that are not gone
	unacked   int // entries handed to subscriptions and not settled
	delayed   int // entries nacked with a delay, waiting for their timer
	consumers []*subscription
	rr        int  // next consumer in round-robin order
	touched   bool // in Broker.touched during a publish
}

// removeConsumer detaches s, keeping the round-robin position stable.
func (q *queue) removeConsumer(s *subscription) {
	for i, c := range q.consumers {
		if c != s {
			continue
		}
		q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
		if i < q.rr {
			q.rr--
		}
		if q.rr >= len(q.consumers) {
			q.rr = 0
		}
		return
	}
}

// popReady removes and returns the first live entry, dropping gone and
// expired ones on the way (RabbitMQ discards expired messages when they
// reach the head of the queue). It returns nil when no entry is ready.
func (q *queue) popReady(b *Broker) *entry {
	var now time.Time
	for q.ready.len() > 0 {
		e := q.ready.popFront()
		if e.state == stateGone {
			continue
		}
		if e.msg.Expiration > 0 {
			if now.IsZero() {
				now = b.now()
			}
			if e.expired(now) {
				e.state = stateGone
				q.readyN--
				b.logger.Debug("memory: message expired", "queue", q.name, "cqrs_id", e.msg.CQRSID, "expiration", e.msg.Expiration)
				continue
			}
		}
		q.readyN--
		return e
	}
	return nil
}

// dropExpiredHead discards gone and expired entries at the head, so that
// counts reflect what a consumer could still receive.
func (q *queue) dropExpiredHead(b *Broker) {
	var now time.Time
	for q.ready.len() > 0 {
		e := q.ready.at(0)
		switch {
		case e.state == stateGone:
		case e.msg.Expiration > 0:
			if now.IsZero() {
				now = b.now()
			}
			if !e.expired(now) {
				return
			}
			e.state = stateGone
			q.readyN--
			b.logger.Debug("memory: message expired", "queue", q.name, "cqrs_id", e.msg.CQRSID, "expiration", e.msg.Expiration)
		default:
			return
		}
		q.ready.popFront()
	}
}

// compact drops the gone entries left in the middle of the ready list (by
// dead-letter scans) once they outnumber the live ones, so a queue nobody
// consumes does not keep removed bodies alive.
func (q *queue) compact() {
	if q.ready.len() <= 2*q.readyN+64 {
		return
	}
	live := make([]*entry, 0, q.readyN)
	for i := range q.ready.len() {
		if e := q.ready.at(i); e.state != stateGone {
			live = append(live, e)
		}
	}
	q.ready.reset()
	q.ready.pushFront(live)
}

// deque is a slice-backed double-ended queue of entries. Pushing at the back
// and popping at the front are amortised O(1); pushing a run at the front
// (requeue) is O(run) when there is room before head, O(len) otherwise.
type deque struct {
	buf  []*entry
	head int
}

func (d *deque) len() int { return len(d.buf) - d.head }

func (d *deque) at(i int) *entry { return d.buf[d.head+i] }

func (d *deque) pushBack(e *entry) { d.buf = append(d.buf, e) }

func (d *deque) popFront() *entry {
	e := d.buf[d.head]
	d.buf[d.head] = nil
	d.head++
	switch {
	case d.head == len(d.buf):
		d.buf, d.head = d.buf[:0], 0
	case d.head >= 1024 && 2*d.head >= len(d.buf):
		// Compact once the dead prefix is at least as long as the live part:
		// the copy is paid for by the pops that made the prefix.
		n := copy(d.buf, d.buf[d.head:])
		clear(d.buf[n:])
		d.buf, d.head = d.buf[:n], 0
	}
	return e
}

// pushFront puts es, in order, before the current first entry.
func (d *deque) pushFront(es []*entry) {
	if len(es) <= d.head {
		d.head -= len(es)
		copy(d.buf[d.head:], es)
		return
	}
	nb := make([]*entry, 0, len(es)+d.len()+len(es))
	nb = append(nb, es...)
	nb = append(nb, d.buf[d.head:]...)
	d.buf, d.head = nb, 0
}

// insert puts e at position i (0 = front, len = back).
func (d *deque) insert(i int, e *entry) {
	if i >= d.len() {
		d.pushBack(e)
		return
	}
	d.buf = append(d.buf, nil)
	p := d.head + i
	copy(d.buf[p+1:], d.buf[p:])
	d.buf[p] = e
}

// reset drops every entry.
func (d *deque) reset() {
	clear(d.buf)
	d.buf, d.head = d.buf[:0], 0
}

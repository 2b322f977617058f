package rabbitmq

import (
	"slices"
	"time"
)

// ackHold bounds how long an acknowledged delivery waits to go out in a
// multiple ack before it is sent on its own. Consumers with several workers
// ack their batches a few milliseconds apart; most held acks leave well
// within this, covered by one multiple ack.
const ackHold = 2 * time.Millisecond

// maxHeld is how many acknowledged deliveries a subscription with the given
// prefetch holds at most: past it the longest held ones are sent singly at
// once, so that held acks never take more than a quarter of the prefetch
// window.
func maxHeld(prefetch int) int { return prefetch / 4 }

// tagSet tracks a channel's delivery tags, which the broker assigns in
// increasing order from 1, from their delivery until they are settled on the
// wire.
//
// A tag is live from its delivery until the caller settles it. An acked tag
// is then held until every older tag is settled on the wire or held too: one
// basic.ack with multiple=true up to the newest of them then settles them
// all (the broker acks its outstanding tags up to that one; those already
// settled by earlier frames are simply gone). A nacked tag is settled on the
// wire at once.
type tagSet struct {
	live  map[uint64]struct{} // delivered, not yet settled by the caller
	held  map[uint64]struct{} // acked by the caller, not yet on the wire
	order []uint64            // order[head:] is increasing and holds every live and held tag, plus settled ones not yet compacted away
	head  int

	since     []heldAt // when tags were held, oldest first, including tags since sent
	sinceHead int
}

type heldAt struct {
	tag uint64
	at  time.Time
}

func (ts *tagSet) add(tag uint64) {
	if ts.live == nil {
		ts.live = make(map[uint64]struct{})
		ts.held = make(map[uint64]struct{})
	}
	ts.live[tag] = struct{}{}
	ts.order = append(ts.order, tag)
}

// has reports whether tag is live: delivered and not settled by the caller.
func (ts *tagSet) has(tag uint64) bool {
	_, ok := ts.live[tag]
	return ok
}

// outstanding reports whether the broker still counts tag as unacknowledged.
func (ts *tagSet) outstanding(tag uint64) bool {
	if _, ok := ts.live[tag]; ok {
		return true
	}
	_, ok := ts.held[tag]
	return ok
}

// heldCount returns the number of held tags.
func (ts *tagSet) heldCount() int { return len(ts.held) }

// remove forgets a live tag that was never handed to the caller.
func (ts *tagSet) remove(tag uint64) {
	delete(ts.live, tag)
	ts.compact()
}

// ack holds tags (sorted, distinct, all live), acked at now, and returns the
// tag up to which a multiple ack is to be sent at once (0 for none): it
// covers every held tag older than the oldest live one.
func (ts *tagSet) ack(tags []uint64, now time.Time) (upTo uint64) {
	for _, t := range tags {
		delete(ts.live, t)
		ts.held[t] = struct{}{}
		ts.since = append(ts.since, heldAt{t, now})
	}
	return ts.release()
}

// nack removes tags (sorted, distinct, all live) and says how to nack them
// on the wire: with multiple=true up to upTo (0 for none), which covers
// exactly those of tags that are the oldest outstanding ones (held tags
// count: a multiple nack must not cover them), and singly for the rest.
// Held tags may then be released: call release after sending.
func (ts *tagSet) nack(tags []uint64) (upTo uint64, singles []uint64) {
	j := 0
	for _, t := range ts.order[ts.head:] {
		if !ts.outstanding(t) {
			continue
		}
		if j < len(tags) && tags[j] == t {
			j++
			continue
		}
		break
	}
	for _, t := range tags {
		delete(ts.live, t)
	}
	ts.compact()
	if j < 2 {
		return 0, tags // a single nack is as short as a multiple one
	}
	return tags[j-1], tags[j:]
}

// release takes the held tags that are older than every live tag and returns
// the newest of them, up to which a multiple ack is to be sent (0 for none).
func (ts *tagSet) release() (upTo uint64) {
	for ; ts.head < len(ts.order); ts.head++ {
		t := ts.order[ts.head]
		if _, ok := ts.live[t]; ok {
			break
		}
		if _, ok := ts.held[t]; ok {
			delete(ts.held, t)
			upTo = t
		}
	}
	ts.compact()
	return upTo
}

// flush takes, longest held first, at most n of the tags held at or before
// cutoff, to be acked singly (sorted). release must have run since the last
// change: then no held tag is older than every live one, and none of them
// fits in a multiple ack.
func (ts *tagSet) flush(n int, cutoff time.Time) (singles []uint64) {
	for ; ts.sinceHead < len(ts.since) && len(singles) < n && !ts.since[ts.sinceHead].at.After(cutoff); ts.sinceHead++ {
		t := ts.since[ts.sinceHead].tag
		if _, ok := ts.held[t]; ok {
			delete(ts.held, t)
			singles = append(singles, t)
		}
	}
	slices.Sort(singles)
	ts.compact()
	return singles
}

// flushAll takes every held tag: those older than every live tag are to be
// acked with multiple=true up to upTo (0 for none), then the others singly.
func (ts *tagSet) flushAll() (upTo uint64, singles []uint64) {
	upTo = ts.release()
	for t := range ts.held {
		singles = append(singles, t)
	}
	clear(ts.held)
	slices.Sort(singles)
	ts.compact()
	return upTo, singles
}

// oldestHeld returns when the longest held tag was held, if any is.
func (ts *tagSet) oldestHeld() (time.Time, bool) {
	for ; ts.sinceHead < len(ts.since); ts.sinceHead++ {
		h := ts.since[ts.sinceHead]
		if _, ok := ts.held[h.tag]; ok {
			return h.at, true
		}
	}
	return time.Time{}, false
}

// compact skips settled tags at the front of order, and filters order when
// settled tags behind an old outstanding one pile up, so that its length
// stays within twice the number of outstanding tags (plus a constant); it
// drops the hold times of tags that are no longer held the same way.
func (ts *tagSet) compact() {
	for ts.head < len(ts.order) && !ts.outstanding(ts.order[ts.head]) {
		ts.head++
	}
	switch pending := len(ts.order) - ts.head; {
	case pending == 0:
		ts.order, ts.head = ts.order[:0], 0
	case pending > 2*(len(ts.live)+len(ts.held))+64:
		kept := ts.order[:0]
		for _, t := range ts.order[ts.head:] {
			if ts.outstanding(t) {
				kept = append(kept, t)
			}
		}
		ts.order, ts.head = kept, 0
	case ts.head > len(ts.order)/2:
		n := copy(ts.order, ts.order[ts.head:])
		ts.order, ts.head = ts.order[:n], 0
	}

	switch pending := len(ts.since) - ts.sinceHead; {
	case len(ts.held) == 0:
		ts.since, ts.sinceHead = ts.since[:0], 0
	case pending > 2*len(ts.held)+64:
		kept := ts.since[:0]
		for _, h := range ts.since[ts.sinceHead:] {
			if _, ok := ts.held[h.tag]; ok {
				kept = append(kept, h)
			}
		}
		ts.since, ts.sinceHead = kept, 0
	case ts.sinceHead > len(ts.since)/2:
		n := copy(ts.since, ts.since[ts.sinceHead:])
		ts.since, ts.sinceHead = ts.since[:n], 0
	}
}

package rabbitmq

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestTagSetNack: a nack goes out with multiple=true for the part of the
// tags that are the oldest outstanding ones, and singly for the rest.
func TestTagSetNack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		delivered    []uint64 // tags added, in order
		settledFirst []uint64 // settled on the wire one by one before the tested call
		heldFirst    []uint64 // acked (held) before the tested call
		nack         []uint64
		wantUpTo     uint64
		wantSingles  []uint64
		wantRelease  uint64 // the multiple ack that release then allows
	}{
		{name: "whole window", delivered: seq(1, 10), nack: seq(1, 10), wantUpTo: 10},
		{name: "oldest prefix", delivered: seq(1, 10), nack: seq(1, 4), wantUpTo: 4},
		{name: "one oldest", delivered: seq(1, 10), nack: []uint64{1}, wantSingles: []uint64{1}},
		{name: "not the oldest", delivered: seq(1, 10), nack: seq(2, 5), wantSingles: seq(2, 5)},
		{name: "prefix plus others", delivered: seq(1, 10), nack: []uint64{1, 2, 3, 7, 9}, wantUpTo: 3, wantSingles: []uint64{7, 9}},
		{name: "prefix after settled holes", delivered: seq(1, 10), settledFirst: []uint64{1, 3}, nack: []uint64{2, 4, 5}, wantUpTo: 5},
		{name: "gap of outstanding stops the prefix", delivered: seq(1, 10), settledFirst: []uint64{3}, nack: []uint64{1, 2, 5}, wantUpTo: 2, wantSingles: []uint64{5}},
		{name: "tags of a later session", delivered: seq(101, 110), nack: seq(101, 103), wantUpTo: 103},
		{name: "held tag stops the prefix", delivered: seq(1, 10), heldFirst: []uint64{3}, nack: []uint64{1, 2, 4, 5}, wantUpTo: 2, wantSingles: []uint64{4, 5}, wantRelease: 3},
		{name: "held tags released behind the nack", delivered: seq(1, 10), heldFirst: []uint64{4, 5, 7}, nack: seq(1, 3), wantUpTo: 3, wantRelease: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := delivered(tt.delivered)
			for _, tag := range tt.settledFirst {
				ts.remove(tag)
			}
			if upTo := ts.ack(tt.heldFirst, time.Now()); upTo != 0 {
				t.Fatalf("ack(%v) = %d, want them held", tt.heldFirst, upTo)
			}
			upTo, singles := ts.nack(slices.Clone(tt.nack))
			if upTo != tt.wantUpTo || !slices.Equal(singles, tt.wantSingles) {
				t.Errorf("nack(%v) = (%d, %v), want (%d, %v)", tt.nack, upTo, singles, tt.wantUpTo, tt.wantSingles)
			}
			if got := ts.release(); got != tt.wantRelease {
				t.Errorf("release() = %d, want %d", got, tt.wantRelease)
			}
			for _, tag := range tt.nack {
				if ts.has(tag) || ts.outstanding(tag) {
					t.Errorf("tag %d still outstanding", tag)
				}
			}
		})
	}
}

// TestTagSetAck walks four workers' interleaved batches: acks wait until
// they are the oldest outstanding ones, then go out in one multiple ack.
func TestTagSetAck(t *testing.T) {
	t.Parallel()
	ts := delivered(seq(1, 12))
	now := time.Now()
	steps := []struct {
		ack      []uint64
		wantUpTo uint64
		wantHeld int
	}{
		{ack: []uint64{2, 6, 10}, wantUpTo: 0, wantHeld: 3},  // worker 2: 1 is outstanding
		{ack: []uint64{3, 7, 11}, wantUpTo: 0, wantHeld: 6},  // worker 3
		{ack: []uint64{1, 5, 9}, wantUpTo: 3, wantHeld: 6},   // worker 1: 1-3 go, 4 is outstanding
		{ack: []uint64{4, 8, 12}, wantUpTo: 12, wantHeld: 0}, // worker 4: everything goes
	}
	for _, st := range steps {
		if upTo := ts.ack(st.ack, now); upTo != st.wantUpTo || ts.heldCount() != st.wantHeld {
			t.Fatalf("ack(%v) = %d with %d held, want %d with %d held", st.ack, upTo, ts.heldCount(), st.wantUpTo, st.wantHeld)
		}
	}
	if len(ts.order) != 0 || len(ts.since) != 0 {
		t.Fatalf("bookkeeping left: order %v, since %v", ts.order, ts.since)
	}
}

// TestTagSetFlush: held tags that waited past the cutoff are flushed singly,
// in order; younger ones stay held; a count takes the longest held first.
func TestTagSetFlush(t *testing.T) {
	t.Parallel()
	ts := delivered(seq(1, 10))
	t0 := time.Now()
	ts.ack([]uint64{5, 9}, t0)
	ts.ack([]uint64{3}, t0.Add(time.Millisecond))
	ts.ack([]uint64{7}, t0.Add(3*time.Millisecond))
	if at, ok := ts.oldestHeld(); !ok || !at.Equal(t0) {
		t.Fatalf("oldestHeld = %v, %v; want %v", at, ok, t0)
	}
	if got := ts.flush(math.MaxInt, t0.Add(time.Millisecond)); !slices.Equal(got, []uint64{3, 5, 9}) {
		t.Fatalf("flush(all, t0+1ms) = %v, want [3 5 9]", got)
	}
	if at, ok := ts.oldestHeld(); !ok || !at.Equal(t0.Add(3*time.Millisecond)) {
		t.Fatalf("oldestHeld = %v, %v; want t0+3ms", at, ok)
	}
	ts.ack([]uint64{6, 8}, t0.Add(4*time.Millisecond))
	if got := ts.flush(2, t0.Add(time.Hour)); !slices.Equal(got, []uint64{6, 7}) {
		t.Fatalf("flush(2, later) = %v, want [6 7]", got)
	}
	if upTo, singles := ts.flushAll(); upTo != 0 || !slices.Equal(singles, []uint64{8}) {
		t.Fatalf("flushAll = (%d, %v), want (0, [8])", upTo, singles)
	}
	if _, ok := ts.oldestHeld(); ok {
		t.Fatal("a tag is still held")
	}
	// After the flushes, acking the oldest ones covers the flushed tags
	// too, which the broker has forgotten: fine, the frame names 4.
	if upTo := ts.ack([]uint64{1, 2, 4}, t0); upTo != 4 {
		t.Fatalf("ack(1, 2, 4) = %d, want 4", upTo)
	}
}

// TestTagSetBounded: one delivery that is never settled must not make the
// bookkeeping grow with every later delivery, whether the later ones are
// held or flushed.
func TestTagSetBounded(t *testing.T) {
	t.Parallel()
	var ts tagSet
	ts.add(1) // never settled
	t0 := time.Now()
	for tag := uint64(2); tag < 100_000; tag++ {
		ts.add(tag)
		now := t0.Add(time.Duration(tag) * time.Microsecond)
		if upTo := ts.ack([]uint64{tag}, now); upTo != 0 {
			t.Fatalf("ack(%d) = %d behind an outstanding tag", tag, upTo)
		}
		if tag%500 == 0 {
			ts.flush(math.MaxInt, now.Add(-100*time.Microsecond))
		}
		if n := ts.heldCount(); n > 600 {
			t.Fatalf("%d tags held", n)
		}
	}
	if len(ts.order)-ts.head > 2*(len(ts.live)+len(ts.held))+64 || len(ts.live) != 1 {
		t.Fatalf("order holds %d entries for %d outstanding tags", len(ts.order)-ts.head, len(ts.live)+len(ts.held))
	}
	if len(ts.since)-ts.sinceHead > 2*len(ts.held)+64 {
		t.Fatalf("since holds %d entries for %d held tags", len(ts.since)-ts.sinceHead, len(ts.held))
	}
	if upTo, singles := ts.nack([]uint64{1}); upTo != 0 || !slices.Equal(singles, []uint64{1}) {
		t.Fatalf("nack(1) = (%d, %v)", upTo, singles)
	}
	if upTo := ts.release(); upTo != 99_999 {
		t.Fatalf("release() = %d, want 99999", upTo)
	}
}

// TestTagSetAgainstBroker drives the bookkeeping with random interleaved
// batches, nacks, flushes and deliveries, and checks every frame against a
// model of the broker's outstanding tags: a frame never names a tag the
// broker forgot (that would close the channel), a multiple ack never covers
// a tag the caller has not acked, and every acked tag is settled once all
// is flushed.
func TestTagSetAgainstBroker(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			var ts tagSet
			broker := map[uint64]bool{} // outstanding on the broker → acked by the caller
			var next uint64 = 1
			var live []uint64 // handed to the caller, not settled
			t0 := time.Now()
			now := t0
			check := func(op string, tag uint64, multiple, nack bool) {
				t.Helper()
				if _, ok := broker[tag]; !ok {
					t.Fatalf("%s names tag %d, which the broker does not hold", op, tag)
				}
				for b, acked := range broker {
					if b == tag || (multiple && b < tag) {
						if !nack && !acked {
							t.Fatalf("%s up to %d acks tag %d, which the caller did not ack", op, tag, b)
						}
						if nack && acked {
							t.Fatalf("%s up to %d nacks tag %d, which the caller acked", op, tag, b)
						}
						delete(broker, b)
					}
				}
			}
			sendAcks := func(op string, upTo uint64, singles []uint64) {
				t.Helper()
				if upTo > 0 {
					check(op, upTo, true, false)
				}
				for _, s := range singles {
					check(op+" single", s, false, false)
				}
			}
			for range 2000 {
				now = now.Add(time.Duration(rng.IntN(500)) * time.Microsecond)
				switch r := rng.IntN(10); {
				case r < 4 || len(live) == 0: // deliveries
					for range rng.IntN(20) + 1 {
						ts.add(next)
						broker[next] = false
						live = append(live, next)
						next++
					}
				case r < 8: // a worker acks a random batch
					var batch []uint64
					live, batch = takeRandom(rng, live)
					for _, tag := range batch {
						broker[tag] = true
					}
					sendAcks("ack", ts.ack(batch, now), nil)
					if n := ts.heldCount(); n > 50 {
						sendAcks("threshold flush", 0, ts.flush(n-25, now))
					}
				case r < 9: // a nack of one or a few
					n := min(len(live), 3) // among the oldest, to make multiple nacks
					rest, batch := takeRandom(rng, live[:n])
					live = append(rest, live[n:]...)
					upTo, singles := ts.nack(batch)
					if upTo > 0 {
						check("nack", upTo, true, true)
					}
					for _, s := range singles {
						check("nack single", s, false, true)
					}
					sendAcks("release", ts.release(), nil)
				default:
					sendAcks("aged flush", 0, ts.flush(math.MaxInt, now.Add(-2*time.Millisecond)))
				}
			}
			// The workers ack the rest, and the session flushes.
			for _, tag := range live {
				broker[tag] = true
			}
			sendAcks("ack", ts.ack(live, now), nil)
			upTo, singles := ts.flushAll()
			sendAcks("final flush", upTo, singles)
			if len(broker) != 0 {
				t.Fatalf("the broker still holds %d tags", len(broker))
			}
		})
	}
}

// takeRandom removes a random subset of from (keeping its order) and
// returns the rest and the subset, sorted.
func takeRandom(rng *rand.Rand, from []uint64) (rest, taken []uint64) {
	for _, x := range from {
		if rng.IntN(3) == 0 {
			taken = append(taken, x)
		} else {
			rest = append(rest, x)
		}
	}
	return rest, taken
}

// delivered returns a tagSet that delivered tags, in order.
func delivered(tags []uint64) *tagSet {
	var ts tagSet
	for _, tag := range tags {
		ts.add(tag)
	}
	return &ts
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

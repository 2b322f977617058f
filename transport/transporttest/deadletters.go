package transporttest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// scan runs ScanDeadLetters with fn deciding by body, and returns the bodies
// visited.
func (b *bundle) scan(t *testing.T, dlq string, fn func(m *transport.Message) (transport.DeadLetterAction, error)) (visited []string, removed int, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.f.Timeout)
	defer cancel()
	removed, err = b.tr.DeadLetters.ScanDeadLetters(ctx, dlq, func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		visited = append(visited, string(m.Body))
		return fn(m)
	})
	declared(t, "DeadLetterRemove", "ScanDeadLetters", err)
	return visited, removed, err
}

// browse runs BrowseDeadLetters and returns the messages visited.
func (b *bundle) browse(t *testing.T, dlq string) []transport.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.f.Timeout)
	defer cancel()
	var got []transport.Message
	err := b.tr.DeadLetters.BrowseDeadLetters(ctx, dlq, func(_ context.Context, m *transport.Message) error {
		got = append(got, *m)
		return nil
	})
	if err != nil {
		declared(t, "DeadLetterBrowse", "BrowseDeadLetters", err)
		t.Fatalf("BrowseDeadLetters(%q): %v", dlq, err)
	}
	return got
}

// messageBodies returns the bodies of ms as strings.
func messageBodies(ms []transport.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}

func (b *bundle) purge(t *testing.T, dlq string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.f.Timeout)
	defer cancel()
	n, err := b.tr.DeadLetters.PurgeDeadLetters(ctx, dlq)
	if err != nil {
		declared(t, "DeadLetterRemove", "PurgeDeadLetters", err)
		t.Fatalf("PurgeDeadLetters(%q): %v", dlq, err)
	}
	return n
}

// testDeadLetters: messages published to the dead-letter route land in the
// dead-letter queue, not the replica queue; scans visit them oldest first,
// keep or remove them as told, stop at the callback's error, and ignore
// messages that arrive during the scan; purge empties the queue.
func testDeadLetters(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	dlq := transport.DeadLetterQueue(q)
	s := b.subscribe(t, params(q, id))

	want := make([]string, 5)
	msgs := make([]transport.Message, len(want))
	for i := range want {
		want[i] = fmt.Sprintf("dead-%d", i)
		msgs[i] = direct(dlq, id, want[i])
		msgs[i].Expiration = 10 * 24 * time.Hour // django-cqrs's dead_message_ttl; must not hide them
	}
	b.publish(t, msgs...)
	b.publish(t, msg(id, "marker"))
	b.expectOnly(t, s, "marker") // dead letters do not reach the replica queue

	// Scan 1: keep the first two, remove the rest; publish a new dead letter
	// from the first callback, which the scan must not visit.
	published := false
	visited, removed, err := b.scan(t, dlq, func(m *transport.Message) (transport.DeadLetterAction, error) {
		if m.CQRSID != id || m.Queue != dlq {
			t.Errorf("dead letter %q: CQRSID %q Queue %q, want %q and %q", m.Body, m.CQRSID, m.Queue, id, dlq)
		}
		if !published {
			published = true
			if err := b.tryPublish([]transport.Message{direct(dlq, id, "dead-late")}); err != nil {
				return transport.DeadLetterKeep, fmt.Errorf("publish during scan: %w", err)
			}
		}
		switch string(m.Body) {
		case "dead-0", "dead-1":
			return transport.DeadLetterKeep, nil
		}
		return transport.DeadLetterRemove, nil
	})
	if err != nil {
		t.Fatalf("scan 1: %v", err)
	}
	b.checkOrderOrSet(t, "scan 1 visited", visited, want)
	if removed != 3 {
		t.Fatalf("scan 1 removed %d, want 3", removed)
	}

	// Scan 2: remove the first visited, fail on the second (asking for its
	// removal too: an error keeps it whatever the action); the scan stops
	// there and reports the error and what it removed.
	errStop := errors.New("stop here")
	var first string
	visited, removed, err = b.scan(t, dlq, func(m *transport.Message) (transport.DeadLetterAction, error) {
		if first == "" {
			first = string(m.Body)
			return transport.DeadLetterRemove, nil
		}
		return transport.DeadLetterRemove, errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("scan 2 error = %v, want one wrapping the callback's error", err)
	}
	if removed != 1 || len(visited) != 2 {
		t.Fatalf("scan 2 visited %q and removed %d, want 2 visited and 1 removed", visited, removed)
	}
	if b.f.PerQueueOrder && first != "dead-0" {
		t.Fatalf("scan 2 visited %q first, want the oldest, \"dead-0\"", first)
	}

	// Scan 3 sees what is left, including the message published during scan 1.
	left := []string{"dead-0", "dead-1", "dead-late"}
	for i, l := range left {
		if l == first {
			left = append(left[:i:i], left[i+1:]...)
			break
		}
	}
	visited, removed, err = b.scan(t, dlq, func(*transport.Message) (transport.DeadLetterAction, error) {
		return transport.DeadLetterKeep, nil
	})
	if err != nil || removed != 0 {
		t.Fatalf("scan 3: removed %d, error %v; want 0, nil", removed, err)
	}
	b.checkOrderOrSet(t, "scan 3 visited", visited, left)

	if n := b.purge(t, dlq); n != len(left) {
		t.Fatalf("PurgeDeadLetters removed %d, want %d", n, len(left))
	}
	if n := b.purge(t, dlq); n != 0 {
		t.Fatalf("second PurgeDeadLetters removed %d, want 0", n)
	}
	visited, removed, err = b.scan(t, dlq, func(*transport.Message) (transport.DeadLetterAction, error) {
		return transport.DeadLetterRemove, nil
	})
	if err != nil || removed != 0 || len(visited) != 0 {
		t.Fatalf("scan of an empty queue: visited %q, removed %d, error %v", visited, removed, err)
	}
}

// testDeadLetterQueueName: a custom SubscribeParams.DeadLetterQueue is
// declared and bound under its own name.
func testDeadLetterQueueName(t *testing.T, b *bundle) {
	id, q, dlq := b.name("m"), b.name("q"), b.name("graveyard")
	p := params(q, id)
	p.DeadLetterQueue = dlq
	b.subscribe(t, p)

	b.publish(t, direct(dlq, id, "dead-0"), direct(dlq, id, "dead-1"))
	b.checkOrderOrSet(t, "browse visited", messageBodies(b.browse(t, dlq)), []string{"dead-0", "dead-1"})
	if !b.f.DeadLetterRemove {
		return
	}
	if n := b.purge(t, dlq); n != 2 {
		t.Fatalf("PurgeDeadLetters removed %d, want 2", n)
	}
}

// testIntoQueue: an IntoQueue message reaches its queue even for a CQRS ID
// that nothing binds that queue to (a consumer dead-letters an event of a
// model its replica does not register this way), with its CQRS ID, queue,
// body and headers; it reaches no other queue.
func testIntoQueue(t *testing.T, b *bundle) {
	id, other, q := b.name("m"), b.name("unbound"), b.name("q")
	dlq := transport.DeadLetterQueue(q)
	s := b.subscribe(t, params(q, id))

	into := func(queue, body string) transport.Message {
		m := direct(queue, other, body)
		m.IntoQueue = true
		m.Headers = map[string]string{"x-reason": "unknown model"}
		m.Expiration = 10 * 24 * time.Hour
		return m
	}
	b.publish(t, into(dlq, "dead-unbound"), into(q, "live-unbound"))
	d := b.receiveOne(t, s)
	if string(d.Body) != "live-unbound" || d.CQRSID != other || d.Queue != q || d.Headers["x-reason"] != "unknown model" || len(d.Headers) != 1 {
		t.Fatalf("delivery %q: CQRSID %q Queue %q Headers %v; want %q, %q, %q, {x-reason: unknown model}", d.Body, d.CQRSID, d.Queue, d.Headers, "live-unbound", other, q)
	}
	if err := s.Ack(b.ctx, d.ID); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	b.publish(t, msg(id, "marker"))
	b.expectOnly(t, s, "marker") // the dead letter did not reach the replica queue

	got := b.browse(t, dlq)
	if len(got) != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want the IntoQueue one", len(got))
	}
	m := got[0]
	if string(m.Body) != "dead-unbound" || m.CQRSID != other || m.Queue != dlq || m.Headers["x-reason"] != "unknown model" || len(m.Headers) != 1 {
		t.Fatalf("dead letter %q: CQRSID %q Queue %q Headers %v; want %q, %q, %q, {x-reason: unknown model}", m.Body, m.CQRSID, m.Queue, m.Headers, "dead-unbound", other, dlq)
	}

	// Into a queue that does not exist: listed as failed or unroutable,
	// never dropped silently (the caller would lose the event it moves).
	err := b.tryPublish([]transport.Message{into(transport.DeadLetterQueue(b.name("missing")), "dead-nowhere")})
	var pe *transport.PublishError
	if !errors.As(err, &pe) || len(pe.Failed)+len(pe.Unroutable) != 1 {
		t.Fatalf("Publish into a missing queue = %v, want a PublishError listing the message", err)
	}
}

// testDeadLetterBrowse: browsing visits the dead letters oldest first, with
// their CQRS ID, queue and headers, stops at the callback's error, and
// removes nothing: a second browse sees them all again.
func testDeadLetterBrowse(t *testing.T, b *bundle) {
	id, q := b.name("m"), b.name("q")
	dlq := transport.DeadLetterQueue(q)
	b.subscribe(t, params(q, id))

	want := []string{"dead-0", "dead-1", "dead-2"}
	msgs := make([]transport.Message, len(want))
	for i, w := range want {
		msgs[i] = direct(dlq, id, w)
		msgs[i].Headers = map[string]string{"x-reason": w}
	}
	b.publish(t, msgs...)
	for round := range 2 {
		got := b.browse(t, dlq)
		b.checkOrderOrSet(t, fmt.Sprintf("browse %d visited", round+1), messageBodies(got), want)
		for _, m := range got {
			if m.CQRSID != id || m.Queue != dlq || m.Headers["x-reason"] != string(m.Body) {
				t.Fatalf("browsed dead letter %q: CQRSID %q Queue %q Headers %v; want %q, %q, {x-reason: %s}", m.Body, m.CQRSID, m.Queue, m.Headers, id, dlq, m.Body)
			}
		}
	}

	errStop := errors.New("stop here")
	ctx, cancel := context.WithTimeout(b.ctx, b.f.Timeout)
	defer cancel()
	visited := 0
	err := b.tr.DeadLetters.BrowseDeadLetters(ctx, dlq, func(context.Context, *transport.Message) error {
		visited++
		return errStop
	})
	if !errors.Is(err, errStop) || visited != 1 {
		t.Fatalf("browse stopped by its callback: visited %d, error %v; want 1 and one wrapping the callback's error", visited, err)
	}
	b.checkOrderOrSet(t, "browse after the stopped one visited", messageBodies(b.browse(t, dlq)), want)
}

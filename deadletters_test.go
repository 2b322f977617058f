package cqrsync_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport"
)

// deadLetterBundle fills the dead-letter queue through the consumer: a
// body that is not JSON and two events that violate a constraint.
func deadLetterBundle(t *testing.T) (*consumerBundle, string) {
	t.Helper()
	b := setupConsumer(t, consumerOpts{retry: cqrsync.RetryPolicy{MaxRetries: -1}})
	b.publish(t, "djpeer_basic", "this is not json")
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 0, 666, time.Now()))
	b.publish(t, "djpeer_basic", saveBody("SAVE", 2, 0, 666, time.Now()))
	b.settle(t)
	dlq := transport.DeadLetterQueue(b.queue)
	if n := b.broker.QueueLen(dlq); n != 3 {
		t.Fatalf("dead letters = %d, want 3", n)
	}
	return b, dlq
}

func TestDeadLettersDumpKeeps(t *testing.T) {
	t.Parallel()
	b, dlq := deadLetterBundle(t)
	var out bytes.Buffer
	n, err := tools.DumpDeadLetters(t.Context(), b.broker, dlq, nil, &out)
	if err != nil || n != 3 {
		t.Fatalf("dump = %d, %v; want 3", n, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "this is not json" || !strings.Contains(lines[1], `"instance_pk":1`) {
		t.Fatalf("dump output:\n%s", out.String())
	}
	if n := b.broker.QueueLen(dlq); n != 3 {
		t.Fatalf("dump removed dead letters: %d left, want 3", n)
	}
}

func TestDeadLettersRetryResetsAndRemovesAfterConfirm(t *testing.T) {
	t.Parallel()
	b, dlq := deadLetterBundle(t)
	if err := b.consumer.Stop(); err != nil { // keep the retried events in the queue to look at them
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var seen []int
	n, err := tools.RetryDeadLetters(t.Context(), b.broker, b.pub, b.queue, dlq, &tools.RetryDeadLettersOpts{
		Now: func() time.Time { return now }, OnRetry: func(i int, _ *cqrsync.Payload) { seen = append(seen, i) },
	})
	if n != 2 || err == nil || !strings.Contains(err.Error(), "1 dead letter(s) are not valid payloads") {
		t.Fatalf("retry = %d, %v; want 2 retried and an error about the undecodable one", n, err)
	}
	if len(seen) != 2 || b.broker.QueueLen(dlq) != 1 || b.broker.QueueLen(b.queue) != 2 {
		t.Fatalf("after retry: seen %v, dlq %d, queue %d; want 2, 1 and 2", seen, b.broker.QueueLen(dlq), b.broker.QueueLen(b.queue))
	}
	sub, err := b.broker.Subscriber().Subscribe(t.Context(), &transport.SubscribeParams{Queue: b.queue, CQRSIDs: []string{"djpeer_basic"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	d := <-sub.Deliveries()
	if d.Queue != b.queue || !bytes.Contains(d.Body, []byte(`"retries":0,"expires":"2030-01-02T12:00:00+00:00"`)) {
		t.Fatalf("retried event: queue %q body %s; want the direct route and reset retries/expires", d.Queue, d.Body)
	}
	// The events came broadcast: their copies keep the mark, so that a
	// retried SYNC is not taken for an operator's one-queue repair.
	if d.Headers[cqrsync.HeaderBroadcast] != "1" {
		t.Fatalf("retried event headers = %v, want %s: the event was broadcast", d.Headers, cqrsync.HeaderBroadcast)
	}
}

func TestDeadLettersPurgeSelects(t *testing.T) {
	t.Parallel()
	b, dlq := deadLetterBundle(t)
	n, err := tools.PurgeDeadLetters(t.Context(), b.broker, dlq, &tools.DeadLetterFilter{OlderThan: time.Hour})
	if err != nil || n != 0 {
		t.Fatalf("purge of dead letters older than an hour = %d, %v; want 0 (they are new)", n, err)
	}
	n, err = tools.PurgeDeadLetters(t.Context(), b.broker, dlq, &tools.DeadLetterFilter{CQRSIDs: []string{"other"}})
	if err != nil || n != 0 {
		t.Fatalf("purge of another model = %d, %v; want 0", n, err)
	}
	n, err = tools.PurgeDeadLetters(t.Context(), b.broker, dlq, nil)
	if err != nil || n != 3 || b.broker.QueueLen(dlq) != 0 {
		t.Fatalf("purge all = %d, %v (left %d); want 3 and empty", n, err, b.broker.QueueLen(dlq))
	}
}

// TestConsumerDelayQueueIsBounded: with room for one delayed event and an
// hour's delay, a second failure pushes the first (due soonest) back to the
// queue at once, as django-cqrs does.
func TestConsumerDelayQueueIsBounded(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, consumerOpts{
		retry:  cqrsync.RetryPolicy{MaxRetries: 1, Delay: func(int) time.Duration { return time.Hour }},
		config: func(c *cqrsync.ConsumerConfig) { c.MaxDelayed = 1 },
	})
	b.publish(t, "djpeer_basic", saveBody("SAVE", 1, 0, 666, time.Now()))
	b.publish(t, "djpeer_basic", saveBody("SAVE", 2, 0, 666, time.Now()))
	// pk 1 is retried at once (overflow), fails again, and is dead-lettered;
	// pk 2 waits its hour, unacknowledged.
	dlq := transport.DeadLetterQueue(b.queue)
	waitFor(t, 10*time.Second, func() bool { return b.broker.QueueLen(dlq) == 1 }, "the overflowed event to be dead-lettered")
	var body []byte
	_, _ = b.broker.ScanDeadLetters(context.Background(), dlq, func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		body = m.Body
		return transport.DeadLetterKeep, nil
	})
	if !bytes.Contains(body, []byte(`"instance_pk":1`)) || !bytes.Contains(body, []byte(`"retries":1`)) {
		t.Fatalf("dead letter = %s, want pk 1 after one retry", body)
	}
	if st := b.consumer.Stats(); st.Retried != 1 {
		t.Fatalf("stats = %+v, want 1 retry", st)
	}
}

// appendOnlyDeadLetters is a transport's dead-letter tools on an
// append-only log: it browses but declares, and enforces, that it cannot
// remove one letter.
type appendOnlyDeadLetters struct {
	transport.DeadLetters
	t *testing.T
}

func (a appendOnlyDeadLetters) Capabilities() transport.Capabilities {
	c := a.DeadLetters.Capabilities()
	c.DeadLetterRemove = false
	return c
}

func (a appendOnlyDeadLetters) ScanDeadLetters(context.Context, string, func(context.Context, *transport.Message) (transport.DeadLetterAction, error)) (int, error) {
	a.t.Error("ScanDeadLetters called on a transport that declares it cannot remove dead letters")
	return 0, transport.ErrNotSupported
}

func (a appendOnlyDeadLetters) PurgeDeadLetters(context.Context, string) (int, error) {
	a.t.Error("PurgeDeadLetters called on a transport that declares it cannot remove dead letters")
	return 0, transport.ErrNotSupported
}

// TestDeadLettersBrowseOnlyTransport: dump browses (no removal needed);
// retry and purge consult the declared capabilities and refuse with
// ErrNotSupported before they publish or remove anything.
func TestDeadLettersBrowseOnlyTransport(t *testing.T) {
	t.Parallel()
	b, dlq := deadLetterBundle(t)
	if err := b.consumer.Stop(); err != nil {
		t.Fatal(err)
	}
	dl := appendOnlyDeadLetters{DeadLetters: b.broker, t: t}
	var out bytes.Buffer
	if n, err := tools.DumpDeadLettersJSONL(t.Context(), dl, dlq, nil, &out); err != nil || n != 3 {
		t.Fatalf("dump = %d, %v; want 3 through BrowseDeadLetters", n, err)
	}
	n, err := tools.RetryDeadLetters(t.Context(), dl, b.pub, b.queue, dlq, nil)
	if n != 0 || !errors.Is(err, transport.ErrNotSupported) {
		t.Fatalf("retry = %d, %v; want 0 and ErrNotSupported", n, err)
	}
	for _, f := range []*tools.DeadLetterFilter{nil, {CQRSIDs: []string{"djpeer_basic"}}} {
		if n, err := tools.PurgeDeadLetters(t.Context(), dl, dlq, f); n != 0 || !errors.Is(err, transport.ErrNotSupported) {
			t.Fatalf("purge(%+v) = %d, %v; want 0 and ErrNotSupported", f, n, err)
		}
	}
	if q, d := b.broker.QueueLen(b.queue), b.broker.QueueLen(dlq); q != 0 || d != 3 {
		t.Fatalf("queue %d, dead letters %d; want 0 and 3 (nothing re-published or removed)", q, d)
	}
}

// TestDeadLettersKeepTheEventsHeaders: a dead letter carries the event's
// own headers (its trace context) beside the reason, and a retry sends the
// event's headers back without the dead letter's.
func TestDeadLettersKeepTheEventsHeaders(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, consumerOpts{retry: cqrsync.RetryPolicy{MaxRetries: -1}})
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	msg := transport.Message{CQRSID: "djpeer_basic", Body: []byte(saveBody("SAVE", 1, 0, 666, time.Now())), Headers: map[string]string{"traceparent": trace}}
	if err := b.pub.Publish(t.Context(), []transport.Message{msg}); err != nil {
		t.Fatal(err)
	}
	b.settle(t)
	if err := b.consumer.Stop(); err != nil {
		t.Fatal(err)
	}
	dlq := transport.DeadLetterQueue(b.queue)
	var letter map[string]string
	if err := b.broker.BrowseDeadLetters(t.Context(), dlq, func(_ context.Context, m *transport.Message) error {
		letter = m.Headers
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if letter["traceparent"] != trace || letter[cqrsync.HeaderDeadLetterReason] == "" {
		t.Fatalf("dead letter headers = %v, want the event's traceparent and a reason", letter)
	}
	if _, err := tools.RetryDeadLetters(t.Context(), b.broker, b.pub, b.queue, dlq, nil); err != nil {
		t.Fatal(err)
	}
	sub, err := b.broker.Subscriber().Subscribe(t.Context(), &transport.SubscribeParams{Queue: b.queue, CQRSIDs: []string{"djpeer_basic"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	d := <-sub.Deliveries()
	if d.Headers["traceparent"] != trace || d.Headers[cqrsync.HeaderDeadLetterReason] != "" || d.Headers[cqrsync.HeaderBroadcast] != "1" {
		t.Fatalf("retried event headers = %v, want the traceparent and the broadcast mark, without the reason", d.Headers)
	}
}

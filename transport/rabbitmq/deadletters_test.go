package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/transport"
)

// TestScanDeadLetters: kept messages are requeued in place once the scan
// ends, removed ones are gone, a dead letter carries django-cqrs's
// expiration, and a queue that does not exist holds no dead letters.
func TestScanDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q, id := b.queue(), newID()
	dlq := transport.DeadLetterQueue(q)
	tr := b.newTransport(t, "", nil)
	sub := subscribe(t, tr, &transport.SubscribeParams{Queue: q, CQRSIDs: []string{id}})
	_ = sub.Close()
	ctx := testContext(t)

	msgs := make([]transport.Message, 6)
	for i := range msgs {
		msgs[i] = transport.Message{CQRSID: id, Queue: dlq, Body: fmt.Appendf(nil, "dead-%d", i), Expiration: cqrsync.DefaultDeadLetterTTL}
	}
	if err := tr.Publish(ctx, msgs); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	var visited []string
	removed, err := tr.ScanDeadLetters(ctx, dlq, func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		visited = append(visited, string(m.Body))
		if m.CQRSID != id || m.Queue != dlq {
			t.Errorf("dead letter %s: CQRSID %q Queue %q", m.Body, m.CQRSID, m.Queue)
		}
		if (m.Body[len(m.Body)-1]-'0')%2 == 0 {
			return transport.DeadLetterRemove, nil
		}
		return transport.DeadLetterKeep, nil
	})
	if err != nil || removed != 3 {
		t.Fatalf("scan: removed %d, err %v; want 3, nil", removed, err)
	}
	if want := []string{"dead-0", "dead-1", "dead-2", "dead-3", "dead-4", "dead-5"}; !slices.Equal(visited, want) {
		t.Fatalf("visited %q, want %q", visited, want)
	}

	got := b.drain(t, dlq, 3)
	for i, want := range []string{"dead-1", "dead-3", "dead-5"} {
		if string(got[i].Body) != want {
			t.Fatalf("left in the queue: %s at %d, want %s (kept messages keep their place)", got[i].Body, i, want)
		}
		if got[i].Expiration != "864000000" {
			t.Fatalf("dead letter expiration %q, want django-cqrs's \"864000000\"", got[i].Expiration)
		}
	}

	errCallback := errors.New("callback failed")
	if err := tr.Publish(ctx, msgs[:2]); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	_, err = tr.ScanDeadLetters(ctx, dlq, func(context.Context, *transport.Message) (transport.DeadLetterAction, error) {
		return transport.DeadLetterKeep, errCallback
	})
	if !errors.Is(err, errCallback) {
		t.Fatalf("scan with a failing callback = %v", err)
	}
	_, err = tr.ScanDeadLetters(ctx, dlq, func(context.Context, *transport.Message) (transport.DeadLetterAction, error) {
		return transport.DeadLetterAction(42), nil
	})
	if err == nil {
		t.Fatal("scan accepted an unknown action")
	}
	if n, err := tr.PurgeDeadLetters(ctx, dlq); n != 2 || err != nil {
		t.Fatalf("purge = %d, %v; want 2, nil (nothing lost by the failed scans)", n, err)
	}

	missing := newID()
	if n, err := tr.ScanDeadLetters(ctx, missing, func(context.Context, *transport.Message) (transport.DeadLetterAction, error) {
		return transport.DeadLetterKeep, nil
	}); n != 0 || err != nil {
		t.Fatalf("scan of a missing queue = %d, %v; want 0, nil", n, err)
	}
	if n, err := tr.PurgeDeadLetters(ctx, missing); n != 0 || err != nil {
		t.Fatalf("purge of a missing queue = %d, %v; want 0, nil", n, err)
	}
}

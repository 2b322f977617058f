package tools

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/transport"
)

// DeadLetterFilter selects dead letters. The zero value selects all.
type DeadLetterFilter struct {
	// CQRSIDs, when not empty, selects these models only.
	CQRSIDs []string
	// OlderThan, when positive, selects dead letters that have been in the
	// queue at least this long (messages without the cqrsync.HeaderDeadLetteredAt
	// header, e.g. from django-cqrs, count as old).
	OlderThan time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (f *DeadLetterFilter) match(m *transport.Message) bool {
	if len(f.CQRSIDs) > 0 {
		found := false
		for _, id := range f.CQRSIDs {
			found = found || id == m.CQRSID
		}
		if !found {
			return false
		}
	}
	if f.OlderThan > 0 {
		if at, err := time.Parse(time.RFC3339Nano, m.Headers[cqrsync.HeaderDeadLetteredAt]); err == nil {
			now := time.Now
			if f.Now != nil {
				now = f.Now
			}
			return now().Sub(at) >= f.OlderThan
		}
	}
	return true
}

// DumpDeadLetters writes the body of every selected dead letter in dlq to
// w, one per line (django-cqrs's cqrs_dead_letters dump), and leaves them
// in the queue. It returns how many it wrote.
func DumpDeadLetters(ctx context.Context, dl transport.DeadLetterBrowser, dlq string, filter *DeadLetterFilter, w io.Writer) (int, error) {
	return dumpDeadLetters(ctx, dl, dlq, filter, func(m *transport.Message) error {
		_, err := w.Write(append(append([]byte(nil), m.Body...), '\n'))
		return err
	})
}

// DeadLetterLine is one line of [DumpDeadLettersJSONL]: a dead letter with
// why and when it was dead-lettered.
type DeadLetterLine struct {
	// CQRSID is the model of the event.
	CQRSID string `json:"cqrs_id"`
	// Reason is the cqrsync.HeaderDeadLetterReason header; nil when the dead
	// letter has none (django-cqrs's carry none).
	Reason *string `json:"reason"`
	// DeadLetteredAt is the cqrsync.HeaderDeadLetteredAt header (RFC 3339, UTC);
	// nil when the dead letter has none.
	DeadLetteredAt *string `json:"dead_lettered_at"`
	// Body is the body itself when it is valid JSON, otherwise a JSON string
	// holding it (a body that could not be decoded).
	Body json.RawMessage `json:"body"`
}

// DumpDeadLettersJSONL writes every selected dead letter in dlq to w as a
// JSON object per line, a [DeadLetterLine]: cqrs_id, reason,
// dead_lettered_at and body. It leaves them in the queue and returns how
// many it wrote.
func DumpDeadLettersJSONL(ctx context.Context, dl transport.DeadLetterBrowser, dlq string, filter *DeadLetterFilter, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	header := func(m *transport.Message, k string) *string {
		if v, ok := m.Headers[k]; ok {
			return &v
		}
		return nil
	}
	return dumpDeadLetters(ctx, dl, dlq, filter, func(m *transport.Message) error {
		line := DeadLetterLine{CQRSID: m.CQRSID, Reason: header(m, cqrsync.HeaderDeadLetterReason), DeadLetteredAt: header(m, cqrsync.HeaderDeadLetteredAt), Body: m.Body}
		if !json.Valid(m.Body) {
			b, err := json.Marshal(string(m.Body))
			if err != nil {
				return err
			}
			line.Body = b
		}
		return enc.Encode(&line)
	})
}

// dumpDeadLetters calls write for every selected dead letter in dlq, leaving
// them in the queue, and returns how many it wrote.
func dumpDeadLetters(ctx context.Context, dl transport.DeadLetterBrowser, dlq string, filter *DeadLetterFilter, write func(m *transport.Message) error) (int, error) {
	if filter == nil {
		filter = &DeadLetterFilter{}
	}
	n := 0
	err := dl.BrowseDeadLetters(ctx, dlq, func(_ context.Context, m *transport.Message) error {
		if !filter.match(m) {
			return nil
		}
		if err := write(m); err != nil {
			return errtext.Errorf("cqrsync: dump dead letters: %w", err)
		}
		n++
		return nil
	})
	return n, err
}

// canRemoveDeadLetters returns an error wrapping transport.ErrNotSupported
// when dl's transport declares it cannot remove dead letters, saying what
// the caller can do instead.
func canRemoveDeadLetters(dl transport.DeadLetters, op, dlq string) error {
	if dl.Capabilities().DeadLetterRemove {
		return nil
	}
	return fmt.Errorf("cqrsync: %s dead letters of %s: %w: this transport cannot remove a dead letter (it keeps them on an append-only log); dump them and re-publish the events with the transport's own tools, or let its retention expire them", op, dlq, transport.ErrNotSupported)
}

// RetryDeadLettersOpts configures RetryDeadLetters.
type RetryDeadLettersOpts struct {
	// Filter selects the dead letters to retry. Nil selects all.
	Filter *DeadLetterFilter
	// MessageTTL is the fresh validity given to retried events that had an
	// expiry. Default cqrsync.DefaultMessageTTL; a negative value is refused.
	MessageTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnRetry, when set, is called with each event before it is sent (the
	// CLI prints them, as django-cqrs does).
	OnRetry func(i int, p *cqrsync.Payload)
}

// RetryDeadLetters sends the selected dead letters of dlq back to queue
// (routing key cqrs.<queue>.<cqrs_id>), as django-cqrs's cqrs_dead_letters
// retry does: retries reset to 0, and expires renewed to now + MessageTTL
// unless it was null. Each copy carries the event's own headers and
// cqrsync.HeaderReplayed. A copy the broker cannot route (the queue is not bound to
// its cqrs_id) is reported by the transport, and its dead letter is kept. Each message is removed from the dead-letter queue only
// after the publisher confirmed its copy, so a failure midway loses nothing.
// Dead letters that do not decode stay where they are and are counted in the
// returned error. It returns how many were retried. On a transport that
// does not declare Capabilities.DeadLetterRemove it does nothing and returns
// an error wrapping transport.ErrNotSupported.
func RetryDeadLetters(ctx context.Context, dl transport.DeadLetters, pub transport.Publisher, queue, dlq string, opts *RetryDeadLettersOpts) (int, error) {
	if err := canRemoveDeadLetters(dl, "retry", dlq); err != nil {
		return 0, err
	}
	if opts == nil {
		opts = &RetryDeadLettersOpts{}
	}
	filter := opts.Filter
	if filter == nil {
		filter = &DeadLetterFilter{}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.MessageTTL < 0 {
		return 0, fmt.Errorf("cqrsync: RetryDeadLettersOpts.MessageTTL is negative (%v): use a positive TTL, or 0 for the default %v", opts.MessageTTL, cqrsync.DefaultMessageTTL)
	}
	ttl := cmp.Or(opts.MessageTTL, cqrsync.DefaultMessageTTL)
	var undecodable int
	i := 0
	removed, err := dl.ScanDeadLetters(ctx, dlq, func(ctx context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		if !filter.match(m) {
			return transport.DeadLetterKeep, nil
		}
		p, err := cqrsync.DecodePayload(m.Body, now())
		if err != nil {
			undecodable++
			return transport.DeadLetterKeep, nil
		}
		p.Retries = 0
		if !p.Expires.IsZero() {
			p.Expires = now().Add(ttl)
		}
		i++
		if opts.OnRetry != nil {
			opts.OnRetry(i, p)
		}
		body, err := p.AppendJSON(nil)
		if err != nil {
			return transport.DeadLetterKeep, err
		}
		// The event's own headers (trace context, correlation ID, the
		// broadcast mark) go back with it; the dead letter's do not.
		headers := maps.Clone(m.Headers)
		delete(headers, cqrsync.HeaderDeadLetterReason)
		delete(headers, cqrsync.HeaderDeadLetteredAt)
		if headers == nil {
			headers = make(map[string]string, 1)
		}
		headers[cqrsync.HeaderReplayed] = "1"
		if err := pub.Publish(ctx, []transport.Message{{CQRSID: p.CQRSID, Queue: queue, Body: body, Headers: headers}}); err != nil {
			return transport.DeadLetterKeep, errtext.Errorf("cqrsync: retry dead letter %s pk %v: %w", p.CQRSID, p.InstancePK, err)
		}
		return transport.DeadLetterRemove, nil
	})
	if err == nil && undecodable > 0 {
		err = errtext.Errorf("cqrsync: %d dead letter(s) are not valid payloads and were left in %s: %w", undecodable, dlq, cqrsync.ErrMalformedPayload)
	}
	return removed, err
}

// PurgeDeadLetters removes the selected dead letters of dlq and returns how
// many. With a nil or empty filter it empties the queue at once. On a
// transport that does not declare Capabilities.DeadLetterRemove it removes
// nothing and returns an error wrapping transport.ErrNotSupported.
func PurgeDeadLetters(ctx context.Context, dl transport.DeadLetters, dlq string, filter *DeadLetterFilter) (int, error) {
	if err := canRemoveDeadLetters(dl, "purge", dlq); err != nil {
		return 0, err
	}
	if filter == nil || (len(filter.CQRSIDs) == 0 && filter.OlderThan <= 0) {
		return dl.PurgeDeadLetters(ctx, dlq)
	}
	return dl.ScanDeadLetters(ctx, dlq, func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		if filter.match(m) {
			return transport.DeadLetterRemove, nil
		}
		return transport.DeadLetterKeep, nil
	})
}

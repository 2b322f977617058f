package cqrsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/internal/ujson"
	"github.com/cqrsync/cqrsync/internal/wirevalue"
)

// SignalType is the kind of event a payload carries (its signal_type).
type SignalType string

// The signal types of django-cqrs.
const (
	// SignalSave is a create or an update; replicas apply it only when its
	// revision is newer than theirs.
	SignalSave SignalType = "SAVE"
	// SignalDelete deletes the row, whatever its revision.
	SignalDelete SignalType = "DELETE"
	// SignalSync resends the current state. cqrsync replicas apply a SYNC
	// broadcast to every queue when its revision is not older than theirs,
	// and one sent to their queue alone (a repair) whatever the revision,
	// as django-cqrs replicas apply every SYNC: see Replica.
	SignalSync SignalType = "SYNC"
)

// Valid reports whether s is SAVE, DELETE or SYNC.
func (s SignalType) Valid() bool {
	return s == SignalSave || s == SignalDelete || s == SignalSync
}

// DefaultMessageTTL is how long a message stays valid by default: publish
// time plus this is its expires (django-cqrs CQRS_MESSAGE_TTL, 86400 s).
const DefaultMessageTTL = 24 * time.Hour

// Payload is one django-cqrs event: the decoded message body.
type Payload struct {
	// SignalType is signal_type. Decoding keeps unknown values; they are an
	// apply-time failure, as in django-cqrs.
	SignalType SignalType
	// CQRSID is cqrs_id, the model's identifier.
	CQRSID string
	// InstanceData is instance_data, the row. Nil stands for JSON null.
	InstanceData Object
	// PreviousData is previous_data, the old values of tracked fields. Nil
	// stands for JSON null.
	PreviousData Object
	// InstancePK is instance_pk, any JSON value: json.Number for a number
	// after decoding; int64 or string when built by a master.
	InstancePK any
	// CorrelationID is correlation_id; "" stands for JSON null.
	CorrelationID string
	// Retries counts how many times a replica has requeued the message.
	Retries int
	// Expires is when the message stops being valid; the zero time stands
	// for JSON null (never expires).
	Expires time.Time
	// Meta is meta; nil stands for JSON null. Masters send Object{} ({})
	// when there is no meta.
	Meta Object

	// Queue is not part of the body: it is the replica queue a received
	// event was aimed at (from its routing key cqrs.<queue>.<cqrs_id>), empty
	// for a broadcast. A SYNC with a Queue overwrites the replica's row
	// whatever its revision (see Replica). Encoding ignores it.
	Queue string
	// Headers are not part of the body either: the transport headers a
	// received event arrived with — those the master stored with it (its
	// correlation ID, a propagated trace context) and the transport's own.
	// Nil when none. Encoding ignores them.
	Headers map[string]string

	// gap is set by the apply of a SAVE that skipped revisions or created
	// its key past revision 0: the consumer may ask for the key again.
	gap bool
}

// AppendJSON appends the body of p to dst as a django-cqrs master writes
// it: the nine keys signal_type, cqrs_id, instance_data, previous_data,
// instance_pk, correlation_id, retries, expires and meta in that order,
// encoded like ujson (see [AppendJSON]), with expires as
// "YYYY-MM-DDTHH:MM:SS+00:00" ([FormatExpires]) or null.
func (p *Payload) AppendJSON(dst []byte) ([]byte, error) {
	var err error
	dst = append(dst, `{"signal_type":`...)
	dst = ujson.AppendString(dst, string(p.SignalType))
	dst = append(dst, `,"cqrs_id":`...)
	dst = ujson.AppendString(dst, p.CQRSID)
	dst = append(dst, `,"instance_data":`...)
	if dst, err = ujson.AppendObject(dst, p.InstanceData, 1); err != nil {
		return dst, errtext.Errorf("cqrsync: encoding payload instance_data: %w", err)
	}
	dst = append(dst, `,"previous_data":`...)
	if dst, err = ujson.AppendObject(dst, p.PreviousData, 1); err != nil {
		return dst, errtext.Errorf("cqrsync: encoding payload previous_data: %w", err)
	}
	dst = append(dst, `,"instance_pk":`...)
	if dst, err = ujson.AppendValue(dst, p.InstancePK, 1); err != nil {
		return dst, errtext.Errorf("cqrsync: encoding payload instance_pk: %w", err)
	}
	dst = append(dst, `,"correlation_id":`...)
	if p.CorrelationID == "" {
		dst = append(dst, "null"...)
	} else {
		dst = ujson.AppendString(dst, p.CorrelationID)
	}
	dst = append(dst, `,"retries":`...)
	dst = strconv.AppendInt(dst, int64(p.Retries), 10)
	dst = append(dst, `,"expires":`...)
	if p.Expires.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = wirevalue.AppendExpires(dst, p.Expires)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"meta":`...)
	if dst, err = ujson.AppendObject(dst, p.Meta, 1); err != nil {
		return dst, errtext.Errorf("cqrsync: encoding payload meta: %w", err)
	}
	return append(dst, '}'), nil
}

// MarshalJSON returns the body of p (see [Payload.AppendJSON]).
func (p *Payload) MarshalJSON() ([]byte, error) {
	return p.AppendJSON(make([]byte, 0, 512))
}

// UnmarshalJSON decodes a body with [DecodePayload], using the current time
// for a missing expires.
func (p *Payload) UnmarshalJSON(data []byte) error {
	q, err := DecodePayload(data, time.Now())
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// ErrMalformedPayload is matched (with errors.Is) by every error about a
// body that is not a valid django-cqrs payload. A replica rejects such a
// message (django-cqrs drops it).
var ErrMalformedPayload = errors.New("cqrsync: malformed payload")

// PayloadError describes what is wrong with a payload. It matches
// [ErrMalformedPayload].
type PayloadError struct {
	// Field is the key at fault, such as "instance_pk" or
	// "instance_data.cqrs_revision"; "" when the body as a whole is.
	Field string
	// Reason says what is wrong ("is missing", "must be a string, got
	// number", "body is not JSON: ...").
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// Error implements error: "cqrsync: malformed payload: key "f" <reason>".
func (e *PayloadError) Error() string {
	var b strings.Builder
	b.WriteString("cqrsync: malformed payload: ")
	if e.Field != "" {
		b.WriteString("key ")
		b.WriteString(strconv.Quote(e.Field))
		b.WriteByte(' ')
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		var se *SyntaxError
		if !errors.As(e.Err, &se) { // a SyntaxError is already in Reason
			b.WriteString(": ")
			b.WriteString(errtext.Cause(e.Err))
		}
	}
	return b.String()
}

// Is reports whether target is [ErrMalformedPayload].
func (e *PayloadError) Is(target error) bool { return target == ErrMalformedPayload }

// Unwrap returns the underlying error.
func (e *PayloadError) Unwrap() error { return e.Err }

func payloadFieldErr(field, format string, args ...any) *PayloadError {
	return &PayloadError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// DecodePayload decodes a message body as a django-cqrs replica does.
//
// The body must be a JSON object with the keys signal_type, cqrs_id,
// instance_data and instance_pk (their presence is what django-cqrs checks).
// signal_type must be a string; it is kept even when unknown (applying it
// fails later, as in django-cqrs). cqrs_id must be a non-empty string.
// instance_data must be an object or null (nil). instance_pk may be any
// JSON value. previous_data and meta may be absent, null or an object;
// correlation_id absent, null, a string or a number (kept as its literal
// text); retries absent, null or an integer >= 0. Unknown keys are ignored.
//
// A missing expires means now + [DefaultMessageTTL] (as django-cqrs
// computes it; a zero now means time.Now()); "expires": null means never
// (the zero time). expires is parsed leniently with [ParseDateTime]: a T
// or a space separator, an optional fraction, and an offset "Z", ±HH:MM or
// ±HHMM. A value without an offset is taken as UTC (django-cqrs would fail
// to compare it with its clock). Expires is returned in UTC.
//
// Errors are *[PayloadError] and match [ErrMalformedPayload].
func DecodePayload(body []byte, now time.Time) (*Payload, error) {
	v, err := DecodeJSON(body)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return nil, &PayloadError{Reason: "body is not JSON: " + se.Msg + " at offset " + strconv.Itoa(se.Offset), Err: err}
		}
		return nil, &PayloadError{Reason: "body is not JSON", Err: err}
	}
	obj, ok := v.(Object)
	if !ok {
		return nil, &PayloadError{Reason: "body is not a JSON object (got " + ujson.Kind(v) + ")"}
	}
	p := &Payload{}
	var seen uint8
	const (
		hasSignal = 1 << iota
		hasID
		hasData
		hasPK
		hasExpires
	)
	for _, m := range obj {
		switch m.Key {
		case "signal_type":
			seen |= hasSignal
			s, ok := m.Value.(string)
			if !ok {
				return nil, payloadFieldErr(m.Key, "must be a string, got %s", ujson.Kind(m.Value))
			}
			p.SignalType = SignalType(s)
		case "cqrs_id":
			seen |= hasID
			s, ok := m.Value.(string)
			if !ok {
				return nil, payloadFieldErr(m.Key, "must be a string, got %s", ujson.Kind(m.Value))
			}
			if s == "" {
				return nil, payloadFieldErr(m.Key, "is empty")
			}
			p.CQRSID = s
		case "instance_data":
			seen |= hasData
			o, err := payloadObject(m)
			if err != nil {
				return nil, err
			}
			p.InstanceData = o
		case "previous_data":
			o, err := payloadObject(m)
			if err != nil {
				return nil, err
			}
			p.PreviousData = o
		case "meta":
			o, err := payloadObject(m)
			if err != nil {
				return nil, err
			}
			p.Meta = o
		case "instance_pk":
			seen |= hasPK
			p.InstancePK = m.Value
		case "correlation_id":
			switch c := m.Value.(type) {
			case nil:
			case string:
				p.CorrelationID = c
			case json.Number:
				p.CorrelationID = string(c)
			default:
				return nil, payloadFieldErr(m.Key, "must be a string or null, got %s", ujson.Kind(m.Value))
			}
		case "retries":
			switch r := m.Value.(type) {
			case nil:
			case json.Number:
				n, err := strconv.ParseInt(string(r), 10, 64)
				if err != nil || n < 0 || n > math.MaxInt {
					return nil, payloadFieldErr(m.Key, "must be an integer >= 0, got %s", r)
				}
				p.Retries = int(n)
			default:
				return nil, payloadFieldErr(m.Key, "must be an integer >= 0, got %s", ujson.Kind(m.Value))
			}
		case "expires":
			seen |= hasExpires
			switch e := m.Value.(type) {
			case nil:
			case string:
				t, err := ParseDateTime(e)
				if err != nil {
					return nil, &PayloadError{Field: m.Key, Reason: "is not a valid datetime", Err: err}
				}
				p.Expires = t.UTC()
			default:
				return nil, payloadFieldErr(m.Key, "must be a datetime string or null, got %s", ujson.Kind(m.Value))
			}
		}
	}
	// The keys django-cqrs requires (it checks only their presence).
	switch {
	case seen&hasPK == 0:
		return nil, payloadFieldErr("instance_pk", "is missing")
	case seen&hasSignal == 0:
		return nil, payloadFieldErr("signal_type", "is missing")
	case seen&hasID == 0:
		return nil, payloadFieldErr("cqrs_id", "is missing")
	case seen&hasData == 0:
		return nil, payloadFieldErr("instance_data", "is missing")
	}
	if seen&hasExpires == 0 {
		if now.IsZero() {
			now = time.Now()
		}
		p.Expires = now.Add(DefaultMessageTTL).UTC()
	}
	return p, nil
}

// payloadObject checks that a member is an object or null.
func payloadObject(m Member) (Object, error) {
	switch o := m.Value.(type) {
	case nil:
		return nil, nil
	case Object:
		return o, nil
	default:
		return nil, payloadFieldErr(m.Key, "must be an object or null, got %s", ujson.Kind(m.Value))
	}
}

// Revision returns instance_data.cqrs_revision, which must be a JSON
// integer (a json.Number integer literal, or a Go integer in a payload
// built in Go). Errors are *[PayloadError].
func (p *Payload) Revision() (int64, error) {
	const field = "instance_data.cqrs_revision"
	if p.InstanceData == nil {
		return 0, payloadFieldErr("instance_data", "is null")
	}
	v, ok := p.InstanceData.Get("cqrs_revision")
	if !ok {
		return 0, payloadFieldErr(field, "is missing")
	}
	switch r := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(r), 10, 64)
		if err != nil {
			return 0, payloadFieldErr(field, "must be an integer, got %s", ujson.QuoteTrunc(string(r)))
		}
		return n, nil
	case int64:
		return r, nil
	case int:
		return int64(r), nil
	case int32:
		return int64(r), nil
	case uint32:
		return int64(r), nil
	case uint64:
		if r > math.MaxInt64 {
			return 0, payloadFieldErr(field, "is out of range")
		}
		return int64(r), nil
	default:
		return 0, payloadFieldErr(field, "must be an integer, got %s", ujson.Kind(v))
	}
}

// Updated returns instance_data.cqrs_updated, parsed with [ParseDateTime]
// (a time.Time in a payload built in Go is returned as is). Errors are
// *[PayloadError].
func (p *Payload) Updated() (time.Time, error) {
	const field = "instance_data.cqrs_updated"
	if p.InstanceData == nil {
		return time.Time{}, payloadFieldErr("instance_data", "is null")
	}
	v, ok := p.InstanceData.Get("cqrs_updated")
	if !ok {
		return time.Time{}, payloadFieldErr(field, "is missing")
	}
	switch u := v.(type) {
	case string:
		t, err := ParseDateTime(u)
		if err != nil {
			return time.Time{}, &PayloadError{Field: field, Reason: "is not a valid datetime", Err: err}
		}
		return t, nil
	case time.Time:
		return u, nil
	default:
		return time.Time{}, payloadFieldErr(field, "must be a datetime string, got %s", ujson.Kind(v))
	}
}

// Expired reports whether the message has expired at now: expires is set
// and not later than now (as django-cqrs decides).
func (p *Payload) Expired(now time.Time) bool {
	return !p.Expires.IsZero() && !p.Expires.After(now)
}

// RestampExpires returns body with its expires moved to publish time, as
// django-cqrs sets it when it publishes: now plus the message TTL, cut to
// whole seconds. body is an event as a [Master] captured it at capturedAt
// (the outbox row's CreatedAt), whose expires is capturedAt's whole second
// plus the TTL (see [MasterConfig.MessageTTL]); the TTL is read back from
// the two. Every other byte of body is kept. A body whose expires is null
// (never expires), missing, or not a datetime later than capturedAt, and a
// body that is not a JSON object, is returned as it is: the relay publishes
// what it cannot read unchanged.
//
// The result is appended to dst[:0].
func RestampExpires(dst, body []byte, capturedAt, now time.Time) []byte {
	start, end, ok := expiresBeforeEmptyMeta(body)
	if !ok {
		start, end, ok = ujson.TopLevelValue(body, "expires")
	}
	if !ok || end-start < 2 || body[start] != '"' {
		return append(dst[:0], body...)
	}
	captured, err := ParseDateTime(string(body[start+1 : end-1]))
	if err != nil {
		return append(dst[:0], body...)
	}
	ttl := captured.Sub(capturedAt.Truncate(time.Second))
	if ttl <= 0 {
		return append(dst[:0], body...)
	}
	dst = append(dst[:0], body[:start]...)
	dst = append(dst, '"')
	dst = wirevalue.AppendExpires(dst, now.Add(ttl))
	dst = append(dst, '"')
	return append(dst, body[end:]...)
}

// expiresBeforeEmptyMeta finds the expires value of a body that ends as
// AppendJSON writes it with an empty meta, without scanning the body: its
// last bytes are then the top-level members expires (a quoted datetime in
// FormatExpires's layout) and meta, since a quote inside a JSON string is
// escaped and cannot end one of these runs.
func expiresBeforeEmptyMeta(body []byte) (start, end int, ok bool) {
	const tail = `","meta":{}}`
	const key = `,"expires":"`
	const value = len("2006-01-02T15:04:05+00:00")
	end = len(body) - len(tail) + 1 // after the closing quote
	start = end - value - 2
	if start < len(key)-1 || !bytes.HasSuffix(body, []byte(tail)) || string(body[start-len(key)+1:start+1]) != key {
		return 0, 0, false
	}
	return start, end, true
}

package kafka

import (
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrsync/cqrsync/transport"
)

// The record headers the transport writes beside the message's own. They
// carry what RabbitMQ keeps in its routing key and message properties, and
// never reach [transport.Message.Headers]: a message header with this
// prefix is not carried.
const (
	headerPrefix = "x-cqrsync-kafka-"
	hCQRSID      = headerPrefix + "cqrs-id"     // Message.CQRSID
	hQueue       = headerPrefix + "queue"       // Message.Queue (direct route)
	hInto        = headerPrefix + "into"        // "1": Message.IntoQueue
	hExpires     = headerPrefix + "expires"     // Unix ms after which the message is dropped
	hNotBefore   = headerPrefix + "not-before"  // Unix ms before which a retry is not delivered
	hAttempt     = headerPrefix + "attempt"     // deliveries before this copy's
	hDelays      = headerPrefix + "delays"      // NackDelay count
	hRedelivered = headerPrefix + "redelivered" // "1": a copy of a delivered message
	hRemoved     = headerPrefix + "removed"     // "1": a dead letter's tombstone
)

// meta is what the transport's own headers say about a record.
type meta struct {
	expires, notBefore int64 // Unix ms; 0 when none
	attempt, delays    int
	redelivered        bool
	removed            bool
}

// newRecord encodes m for topic. extra holds transport headers beyond the
// routing ones (retry counts, delays).
func newRecord(topic string, key []byte, m *transport.Message, now time.Time, extra ...kgo.RecordHeader) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(m.Headers)+4+len(extra))
	hs = append(hs, kgo.RecordHeader{Key: hCQRSID, Value: []byte(m.CQRSID)})
	if m.Queue != "" {
		hs = append(hs, kgo.RecordHeader{Key: hQueue, Value: []byte(m.Queue)})
	}
	if m.IntoQueue {
		hs = append(hs, kgo.RecordHeader{Key: hInto, Value: []byte("1")})
	}
	if m.Expiration > 0 {
		hs = append(hs, intHeader(hExpires, now.Add(m.Expiration).UnixMilli()))
	}
	hs = append(hs, extra...)
	for k, v := range m.Headers {
		if !strings.HasPrefix(k, headerPrefix) {
			hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	body := m.Body
	if body == nil {
		body = []byte{} // nil is a tombstone on a compacted topic
	}
	return &kgo.Record{Topic: topic, Key: key, Value: body, Headers: hs}
}

func intHeader(key string, v int64) kgo.RecordHeader {
	return kgo.RecordHeader{Key: key, Value: strconv.AppendInt(nil, v, 10)}
}

// decode returns the message a record carries and its transport headers.
func decode(r *kgo.Record) (transport.Message, meta) {
	var (
		m  transport.Message
		md meta
	)
	m.Body = r.Value
	if m.Body == nil {
		m.Body = []byte{}
	}
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, headerPrefix) {
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(r.Headers))
			}
			m.Headers[h.Key] = string(h.Value)
			continue
		}
		v := string(h.Value)
		switch h.Key {
		case hCQRSID:
			m.CQRSID = v
		case hQueue:
			m.Queue = v
		case hInto:
			m.IntoQueue = v == "1"
		case hExpires:
			md.expires, _ = strconv.ParseInt(v, 10, 64)
		case hNotBefore:
			md.notBefore, _ = strconv.ParseInt(v, 10, 64)
		case hAttempt:
			md.attempt, _ = strconv.Atoi(v)
		case hDelays:
			md.delays, _ = strconv.Atoi(v)
		case hRedelivered:
			md.redelivered = v == "1"
		case hRemoved:
			md.removed = v == "1"
		}
	}
	return m, md
}

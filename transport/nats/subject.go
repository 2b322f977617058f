package nats

import (
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/cqrsync/cqrsync/transport"
)

// Headers this transport adds and strips again on receipt; every header
// whose name starts with internalPrefix or "Nats-" is its own or the
// server's, never the publisher's.
const (
	internalPrefix = "Cqrsync-Nats-"
	// headerExpires is the instant (Unix nanoseconds) after which a message
	// with an Expiration is dropped instead of delivered.
	headerExpires = internalPrefix + "Expires"
	// headerInto marks an IntoQueue message.
	headerInto = internalPrefix + "Into"
)

// eventSubject is the subject of an event in partition k: the broadcast
// "<exchange>.m.<k>.<cqrs_id>", or "<exchange>.m.<k>.<cqrs_id>.<queue>" for
// one queue.
func eventSubject(exchange string, k int, cqrsID, queue string) string {
	s := exchange + ".m." + strconv.Itoa(k) + "." + cqrsID
	if queue != "" {
		s += "." + queue
	}
	return s
}

// partitionFilter is the filter subject of partition k's consumers.
func partitionFilter(exchange string, k int) string {
	return exchange + ".m." + strconv.Itoa(k) + ".>"
}

// deadSubject is the subject of a dead letter.
func deadSubject(exchange, dlq, cqrsID string) string {
	return exchange + ".dl." + dlq + "." + cqrsID
}

// deadFilter matches every dead letter of dlq.
func deadFilter(exchange, dlq string) string { return exchange + ".dl." + dlq + ".>" }

// durableName is the durable consumer of queue's partition k: the queue's
// name itself with one partition, "<queue>_p<k>" with several.
func durableName(queue string, k, partitions int) string {
	if partitions == 1 {
		return queue
	}
	return queue + "_p" + strconv.Itoa(k)
}

// parsedSubject is what a received subject says.
type parsedSubject struct {
	partition int
	cqrsID    string
	queue     string // empty for a broadcast
}

// parseEventSubject parses an event subject of exchange.
func parseEventSubject(exchange, subject string) (parsedSubject, bool) {
	rest, ok := strings.CutPrefix(subject, exchange+".m.")
	if !ok {
		return parsedSubject{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return parsedSubject{}, false
	}
	k, err := strconv.Atoi(parts[0])
	if err != nil {
		return parsedSubject{}, false
	}
	p := parsedSubject{partition: k, cqrsID: parts[1]}
	if len(parts) == 3 {
		p.queue = parts[2]
	}
	return p, true
}

// parseDeadSubject returns the dead-letter queue and CQRS ID of a dead
// letter's subject.
func parseDeadSubject(exchange, subject string) (dlq, cqrsID string, ok bool) {
	rest, ok := strings.CutPrefix(subject, exchange+".dl.")
	if !ok {
		return "", "", false
	}
	dlq, cqrsID, ok = strings.Cut(rest, ".")
	return dlq, cqrsID, ok
}

// outHeaders returns the NATS headers of m, published at now.
func outHeaders(m *transport.Message, now time.Time) natsgo.Header {
	if len(m.Headers) == 0 && m.Expiration <= 0 && !m.IntoQueue {
		return nil
	}
	h := make(natsgo.Header, len(m.Headers)+2)
	for k, v := range m.Headers {
		h[k] = []string{v}
	}
	if m.Expiration > 0 {
		h[headerExpires] = []string{strconv.FormatInt(now.Add(m.Expiration).UnixNano(), 10)}
	}
	if m.IntoQueue && m.Queue != "" {
		h[headerInto] = []string{"1"}
	}
	return h
}

// inHeaders returns the publisher's headers of a received message (nil
// when none), whether it was sent IntoQueue, and when it expires (zero
// when never).
func inHeaders(h natsgo.Header) (headers map[string]string, into bool, expires time.Time) {
	for k, vs := range h {
		switch {
		case k == headerExpires:
			if len(vs) > 0 {
				if n, err := strconv.ParseInt(vs[0], 10, 64); err == nil {
					expires = time.Unix(0, n)
				}
			}
		case k == headerInto:
			into = true
		case strings.HasPrefix(k, internalPrefix), strings.HasPrefix(k, "Nats-"):
		default:
			if headers == nil {
				headers = make(map[string]string, len(h))
			}
			if len(vs) > 0 {
				headers[k] = vs[0]
			} else {
				headers[k] = ""
			}
		}
	}
	return headers, into, expires
}

// Package amqptopology is django-cqrs's RabbitMQ topology: the routing keys
// a message is published under and the header that carries the CQRS ID of a
// message put straight into a queue. The rabbitmq transport speaks it on the
// wire, and the memory transport mirrors it so that the demo routes exactly
// as RabbitMQ does. Other transports (NATS subjects, Kafka topics) render
// [transport.Message] their own way and do not use this package.
//
// The functions are pure and safe for concurrent use.
package amqptopology

import (
	"strings"

	"github.com/cqrsync/cqrsync/transport"
)

// HeaderCQRSID is the header in which the CQRS ID of an IntoQueue message
// travels: such a message is published through the default exchange under
// its queue's name, so its routing key does not say which model it is
// about. Receivers remove the header and set [transport.Message.CQRSID]
// from it.
const HeaderCQRSID = "x-cqrsync-cqrs-id"

// RoutingKey returns the key m is published under, as django-cqrs spells
// it: the CQRS ID for a broadcast, cqrs.<queue>.<cqrs_id> for a message
// aimed at one queue, and the queue's own name for an IntoQueue message
// (published through the default exchange).
func RoutingKey(m *transport.Message) string {
	if m.Queue == "" {
		return m.CQRSID
	}
	if m.IntoQueue {
		return m.Queue
	}
	return DirectRoutingKey(m.Queue, m.CQRSID)
}

// DirectRoutingKey returns the routing key that reaches only queue for
// cqrsID: "cqrs.<queue>.<cqrs_id>". Subscribers bind it on the replica queue
// and on the dead-letter queue.
func DirectRoutingKey(queue, cqrsID string) string {
	return "cqrs." + queue + "." + cqrsID
}

// ParseRoutingKey splits a routing key published on the topic exchange into
// the CQRS ID and, for a direct route, the target queue. It is the inverse
// of [RoutingKey] for messages that are not IntoQueue.
func ParseRoutingKey(key string) (cqrsID, queue string) {
	rest, ok := strings.CutPrefix(key, "cqrs.")
	if !ok {
		return key, ""
	}
	q, id, ok := strings.Cut(rest, ".")
	if !ok {
		return key, ""
	}
	return id, q
}

package rabbitmq

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/amqptopology"
)

// The broker objects, declared with exactly django-cqrs's parameters: a
// declaration that differs in any flag or argument is refused by the broker
// (PRECONDITION_FAILED) when the other side declared first.

// declareExchange declares the topic exchange: durable, not auto-deleted,
// not internal, no arguments. Both sides do it on every channel they open.
func declareExchange(ch *amqp.Channel, exchange string) error {
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q (topic, durable): %w", exchange, err)
	}
	return nil
}

// declareQueue declares a replica or dead-letter queue: durable, not
// exclusive, not auto-deleted, no arguments (the dead-letter queue is an
// ordinary queue filled by republishing, not a RabbitMQ DLX).
func declareQueue(ch *amqp.Channel, name string) error {
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue %q (durable, no arguments): %w", name, err)
	}
	return nil
}

// binding is one queue binding on the exchange.
type binding struct {
	queue, key string
}

// bindings lists what a replica consumer binds for p (defaulted), in
// django-cqrs's order: per CQRS ID, the broadcast key and the direct route on
// the queue, and the direct route on the dead-letter queue.
func bindings(p *transport.SubscribeParams) []binding {
	out := make([]binding, 0, 3*len(p.CQRSIDs))
	for _, id := range p.CQRSIDs {
		out = append(out,
			binding{p.Queue, id},
			binding{p.Queue, amqptopology.DirectRoutingKey(p.Queue, id)},
			binding{p.DeadLetterQueue, amqptopology.DirectRoutingKey(p.DeadLetterQueue, id)},
		)
	}
	return out
}

// declareTopology declares the exchange, both queues and every binding of
// p. Each step is idempotent, so it runs again after every reconnection.
func declareTopology(ch *amqp.Channel, exchange string, p *transport.SubscribeParams) error {
	if err := declareExchange(ch, exchange); err != nil {
		return err
	}
	if err := declareQueue(ch, p.Queue); err != nil {
		return err
	}
	if err := declareQueue(ch, p.DeadLetterQueue); err != nil {
		return err
	}
	for _, b := range bindings(p) {
		if err := ch.QueueBind(b.queue, b.key, exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %q to exchange %q with key %q: %w", b.queue, exchange, b.key, err)
		}
	}
	return nil
}

// publishing builds the AMQP message django-cqrs would send: content type
// text/plain, persistent, and nothing else except an expiration (explicit,
// or the dead-letter TTL when m goes to a dead-letter queue) and headers
// when m has some.
func (t *Transport) publishing(m *transport.Message) amqp.Publishing {
	p := amqp.Publishing{
		ContentType:  "text/plain",
		DeliveryMode: amqp.Persistent,
		Body:         m.Body,
	}
	if m.Expiration > 0 {
		p.Expiration = expirationMillis(m.Expiration)
	}
	if len(m.Headers) > 0 || m.IntoQueue {
		p.Headers = make(amqp.Table, len(m.Headers)+1)
		for k, v := range m.Headers {
			p.Headers[k] = v
		}
		if m.IntoQueue {
			// The routing key is the queue's name: the receiver needs the
			// CQRS ID from somewhere else.
			p.Headers[amqptopology.HeaderCQRSID] = m.CQRSID
		}
	}
	return p
}

// message converts a received AMQP message (consumed or fetched) to a
// transport.Message. CQRSID and Queue come from the routing key, or, for a
// message put into its queue through the default exchange (IntoQueue), from
// the queue name and the amqptopology.HeaderCQRSID header, which is not kept in
// Headers. Expiration is left zero: the broker does not say how much of it
// is left.
func message(d *amqp.Delivery) transport.Message {
	id, q := amqptopology.ParseRoutingKey(d.RoutingKey)
	m := transport.Message{CQRSID: id, Queue: q, Body: d.Body}
	for k, v := range d.Headers {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case []byte:
			s = string(v)
		default:
			s = fmt.Sprint(v)
		}
		if k == amqptopology.HeaderCQRSID && d.Exchange == "" {
			m.CQRSID, m.Queue, m.IntoQueue = s, d.RoutingKey, true
			continue
		}
		if m.Headers == nil {
			m.Headers = make(map[string]string, len(d.Headers))
		}
		m.Headers[k] = s
	}
	return m
}

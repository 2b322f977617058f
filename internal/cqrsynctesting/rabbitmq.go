package cqrsynctesting

import (
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
)

// DeleteRabbitMQ removes a test's own exchange and queues, with each queue's
// dead-letter queue, from the broker at url; what cannot be removed is left.
func DeleteRabbitMQ(url, exchange string, queues ...string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
		_, _ = ch.QueueDelete(transport.DeadLetterQueue(q), false, false, false)
	}
	if exchange != "" {
		_ = ch.ExchangeDelete(exchange, false, false)
	}
}

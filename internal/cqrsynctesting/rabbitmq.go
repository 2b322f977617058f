package cqrsynctesting

import (
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
)

// DeleteRabbitMQ deletes a test's queues, their dead-letter queues and its
// exchange from the RabbitMQ server at url, best effort: a test calls it in
// its cleanup, since the server is shared.
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

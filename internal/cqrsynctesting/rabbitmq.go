package cqrsynctesting

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
)

// CleanupRabbitMQ deletes, when the test ends, an exchange and queues the
// test created on the shared RabbitMQ server at url, with each queue's
// dead-letter queue. Cleanup failures are ignored: the names are unique.
func CleanupRabbitMQ(tb testing.TB, url, exchange string, queues ...string) {
	tb.Cleanup(func() {
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
	})
}

package rabbitmq

import (
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Causes inside the *transport.PublishError of [Transport.Publish], and an
// error of a subscription's Ack and Nack. Test them with errors.Is.
var (
	// ErrUnroutable: the broker returned the message because no queue is
	// bound to its routing key (it was published with mandatory=true). No
	// replica has subscribed to the CQRS ID (or the direct route's queue)
	// yet; publishing it again does not help until one does.
	ErrUnroutable = errors.New("rabbitmq: message returned unroutable: no queue is bound to its routing key")

	// ErrNacked: the broker refused the message (basic.nack), for example
	// because a queue rejected it (x-overflow reject-publish) or an internal
	// error. Publishing again may succeed.
	ErrNacked = errors.New("rabbitmq: message nacked by the broker")

	// ErrConnectionLost: the connection or channel closed before the broker
	// confirmed the message, so it may or may not have been enqueued. The
	// transport reconnects in the background; publish it again.
	ErrConnectionLost = errors.New("rabbitmq: connection lost before the broker confirmed the message")

	// ErrDeliveryRequeued: Ack or Nack named a delivery whose channel closed
	// (connection loss) before it was settled. Nothing is lost: the broker
	// has put the message back in the queue and delivers it again, with
	// Redelivered set and a new ID.
	ErrDeliveryRequeued = errors.New("rabbitmq: delivery's channel closed before it was settled: the broker requeued it and will deliver it again")
)

// permanent reports whether a broker error will happen again however often
// the operation is retried (a misconfiguration), rather than being a passing
// connection problem.
func permanent(err error) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Code {
	case amqp.AccessRefused, amqp.PreconditionFailed, amqp.NotAllowed,
		amqp.InvalidPath, amqp.NotImplemented, amqp.SyntaxError, amqp.CommandInvalid:
		return true
	}
	return false
}

// isNotFound reports whether err is the broker's NOT_FOUND (404).
func isNotFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}

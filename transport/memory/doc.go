// Package memory is an in-memory message broker that behaves like RabbitMQ
// with django-cqrs's topology. It backs the embedded demo and is meant for
// tests, including users' own: a replica's consumer can be tested end to end
// without a broker, and faults can be injected on purpose.
//
//	broker := memory.NewBroker(nil)
//	pub := broker.Publisher()       // transport.Publisher
//	sub := broker.Subscriber()      // transport.Subscriber
//	var dl transport.DeadLetters = broker
//
// It passes the [transporttest] conformance suite with every feature.
//
// # Topology
//
// A [Broker] holds named queues and routing-key bindings, like a topic
// exchange whose keys are plain words. Subscribe (or [Broker.DeclareQueue])
// declares the replica queue and its dead-letter queue and binds, for every
// CQRS ID:
//
//	<queue>     <- <cqrs_id>                (broadcast)
//	<queue>     <- cqrs.<queue>.<cqrs_id>   (direct: SYNC to one queue, retries)
//	<dlq>       <- cqrs.<dlq>.<cqrs_id>     (dead letters)
//
// Publish routes each message by [amqptopology.RoutingKey] to every
// bound queue; an IntoQueue message goes to its declared queue whatever
// that is bound to, as through RabbitMQ's default exchange. A message that
// matches no binding (or names no declared queue) is dropped without error,
// as RabbitMQ drops it. Queues and bindings live as long as the broker,
// whether or not anyone consumes: a replica that restarts gets what was
// published while it was away.
//
// # Delivery
//
// Subscriptions on one queue compete: the broker hands ready messages to
// them in turn, each up to its prefetch window (unsettled deliveries).
// Messages of one queue are delivered in the order they were enqueued.
// Nack with requeue, closing a subscription, cancelling its context and
// [Broker.CutConnections] put unsettled messages back at the front of the
// queue in their original order, marked Redelivered. A message whose
// [transport.Message.Expiration] has passed (by Config.Now) is dropped when
// it reaches the head of its queue. Bodies and headers are copied on publish
// and again on every delivery, so neither side can change the other's bytes.
//
// # Faults
//
// For tests that must prove convergence under failure:
//
//   - [Broker.CutConnections] ends every subscription with [ErrConnectionLost]
//     and requeues what they held, like a broker restart.
//   - Config.FailPublish rejects chosen messages in Publish with a
//     *[transport.PublishError].
//   - Config.Chaos duplicates and reorders messages with a seeded random
//     source, so that a failing run can be replayed ([Broker.ChaosSeed]).
//
// [Broker.QueueLen] and [Broker.Queues] let a test wait until everything was
// processed.
//
// # Differences from RabbitMQ
//
// Nothing survives the process. There is no exchange, no vhost and no
// connection to configure; publishing cannot block or be throttled, so
// Publish returns as soon as the messages are enqueued (the equivalent of a
// publisher confirm). Delivery IDs are per subscription and start at 1, like
// delivery tags, but an unknown ID makes Ack return [ErrUnknownDelivery]
// instead of closing the channel.
//
// [transporttest]: https://pkg.go.dev/github.com/cqrsync/cqrsync/transport/transporttest
package memory

// Package rabbitmq is the RabbitMQ transport of cqrsync, built on
// github.com/rabbitmq/amqp091-go. It speaks django-cqrs's wire format, so Go
// and Django services can publish to and consume from one another on the same
// exchange.
//
//	t, err := rabbitmq.New(ctx, &rabbitmq.Config{
//		URL: "amqp://user:password@rabbitmq:5672/",
//	})
//	if err != nil { ... }
//	defer t.Close()
//	// t is a transport.Publisher, a transport.Subscriber and a transport.DeadLetters.
//
// # Topology
//
// Everything goes through one topic exchange ([Config.Exchange], "cqrs" by
// default), declared durable, not auto-deleted, not internal and without
// arguments on every channel the transport opens, exactly as django-cqrs
// declares it (RabbitMQ refuses a declaration that differs with
// PRECONDITION_FAILED). [Transport.Subscribe] declares the replica queue and
// its dead-letter queue (durable, not exclusive, not auto-deleted, no
// arguments: the dead-letter queue is filled by republishing, not by a
// RabbitMQ DLX) and binds, for every CQRS ID:
//
//	<queue>             <- <cqrs_id>                          broadcast SAVE, DELETE, SYNC
//	<queue>             <- cqrs.<queue>.<cqrs_id>             SYNC to this queue, own retries
//	dead_letter_<queue> <- cqrs.dead_letter_<queue>.<cqrs_id> dead letters
//
// Bindings are never removed. Queue names and CQRS IDs are topic words: no
// '.', '*' or '#'.
//
// # Messages
//
// A message is published under [amqptopology.RoutingKey] with
// content_type "text/plain", delivery_mode 2 (persistent) and no other
// property, except the expiration (in milliseconds) when the message has an
// Expiration (the consumer sets its dead letters' to 10 days by default:
// "864000000", as django-cqrs), and headers when it has some
// (django-cqrs ignores them). The body travels byte for byte. On receipt,
// CQRSID and Queue are parsed back from the routing key.
//
// A message with [transport.Message.IntoQueue] set (cqrsync's consumer sends
// its dead letters so) goes through the default exchange under its queue's
// name instead, so it reaches the queue whatever the queue is bound to, with
// its CQRS ID in the [amqptopology.HeaderCQRSID] header; on receipt CQRSID comes
// from that header and Queue from the routing key.
//
// # Publishing
//
// Publishing uses its own long-lived connection and a small pool of
// confirm-mode channels ([Config.ChannelPool]). A Publish call takes one
// channel, pipelines the whole batch on it with up to [Config.ConfirmWindow]
// unconfirmed messages in flight, and returns nil only when the broker has
// confirmed every message. Messages are published with mandatory=true: one
// that no queue is bound for comes back listed in
// [transport.PublishError.Unroutable] with [ErrUnroutable] (or, with
// [Config.DropUnroutable], is dropped silently as django-cqrs does). A failed
// batch returns a [*transport.PublishError] that lists exactly the messages
// that were not accepted (returned, nacked, or unconfirmed when the connection
// dropped); the others are safely on the broker.
//
// # Subscribing
//
// Subscriptions share a second connection, one channel each, with a
// per-consumer prefetch ([transport.SubscribeParams.Prefetch], 1001 by
// default as django-cqrs) and manual acknowledgements. Acks are coalesced:
// acked deliveries go out in one frame with multiple=true once they are the
// oldest outstanding ones, so that several workers acking their own batches
// of interleaved deliveries cost a few frames, not one per delivery. An ack
// waits for that at most about 2 ms, and held acks take at most a quarter
// of the prefetch window; past that they are sent singly. Nack is sent at
// once. See [Transport.Subscribe] for what an ack that was held when the
// channel dropped means (a redelivery, never a loss).
//
// # Reconnection
//
// Both connections reconnect by themselves with [Config.ReconnectBackoff]
// after a network failure or a broker restart; the heartbeat
// ([Config.Heartbeat]) detects a silent peer. While the publishing
// connection is down, Publish waits for it, bounded by its context; messages
// that were in flight when it dropped are reported in the PublishError,
// never silently dropped. A subscription opens a new channel, declares its
// topology again and resumes on its own; its Deliveries channel stays open.
// The broker requeues what the lost channel had delivered but not settled, so
// acking such a delivery returns [ErrDeliveryRequeued]: the message is not
// lost, it comes again with a new ID (as do deliveries whose ack was still
// held, for at most a few milliseconds, when the channel dropped). Delivery IDs stay unique within a
// subscription across reconnections. Errors that retrying cannot fix
// (ACCESS_REFUSED, PRECONDITION_FAILED) end the subscription; Err reports
// them.
//
// # Dead letters
//
// [Transport.ScanDeadLetters] visits the messages present in a dead-letter
// queue when it starts, with basic.get on a dedicated channel: kept messages
// are requeued in place once the scan ends, removed ones are acknowledged.
// [Transport.BrowseDeadLetters] is that scan keeping every message.
// [Transport.PurgeDeadLetters] purges the queue.
//
// # Capabilities
//
// [Transport.Capabilities] declares everything [transport.Capabilities]
// lists, unroutable reports included. The retry delay stays in the
// consumer's memory, as in django-cqrs: RabbitMQ has no delayed
// redelivery without plugins.
//
// # Interoperating with django-cqrs
//
// django-cqrs ignores the vhost of its URL and always uses "/": when Django
// services share the mesh, use the vhost "/" (an empty URL path) here too.
// django-cqrs publishes without confirms and ignores returned messages; this
// transport is stricter on its own side only, the wire format is the same.
// The contract and captured traffic are in testdata/interop of the repository.
//
// # Credentials
//
// The password of [Config.URL] never appears in errors or logs: URLs are
// shown with it replaced by "xxxxx", and a URL that cannot be parsed is not
// shown at all.
package rabbitmq

// Package transport is the broker contract cqrsync's master and replica
// speak: a [Publisher] that sends events and waits for the broker's
// confirmation, a [Subscriber] whose subscriptions deliver a replica queue
// with explicit Ack and Nack, and [DeadLetters] to browse, scan and purge a
// dead-letter queue. Transports move opaque bodies plus headers; the
// django-cqrs codec stays in package cqrsync.
//
// Each transport declares what it can do in its [Capabilities] (delayed
// redelivery, requeue, dead-letter removal, ...); an operation it does not
// declare returns an error wrapping [ErrNotSupported]. Implementations:
// transport/rabbitmq and transport/memory; transport/transporttest is the
// conformance suite every transport passes.
package transport

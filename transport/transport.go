package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Message is one event as a transport sees it: opaque bytes and the routing
// facts needed to deliver them. Transports never look inside Body.
type Message struct {
	// CQRSID is the model the event is about. A broadcast (Queue empty)
	// reaches every queue subscribed to CQRSID.
	CQRSID string

	// Queue, when not empty, sends the message to that one queue only, if
	// it is subscribed to CQRSID (a SYNC aimed at one replica, a replica's
	// own retry, a dead letter). Empty means broadcast. How a transport
	// addresses one queue is its own business (RabbitMQ's routing key
	// cqrs.<queue>.<cqrs_id> is in transport/amqptopology).
	Queue string

	// IntoQueue, with Queue set, puts the message into the queue named Queue
	// itself, whatever that queue is subscribed to: while the queue exists
	// the message cannot be unroutable. Consumers use it for dead letters,
	// whose event may carry a cqrs_id the dead-letter queue is not bound to
	// (a queue bound to more models than its replica registers). Receivers
	// see CQRSID and Queue as for a routed message. A transport without
	// Capabilities.DirectToQueue routes it as if IntoQueue were false. When
	// the queue does not exist, Publish fails for the message (it is listed
	// in PublishError.Failed or Unroutable, never dropped silently), so the
	// caller keeps the event it was moving.
	IntoQueue bool

	// Body is the encoded payload. Transports deliver it byte for byte.
	Body []byte

	// Headers are optional transport-level annotations (for example the reason
	// a message was dead-lettered). django-cqrs ignores them. Nil when none.
	Headers map[string]string

	// Expiration, when positive, lets the broker discard the message after
	// that long in a queue (django-cqrs sets it on dead letters only).
	// Transports that cannot expire messages ignore it.
	Expiration time.Duration
}

// DeadLetterQueue returns the default dead-letter queue name of a replica
// queue, "dead_letter_<queue>", as django-cqrs names it.
func DeadLetterQueue(queue string) string { return "dead_letter_" + queue }

// Publisher sends messages to a broker.
//
// Publish is safe for concurrent use. It returns nil only when the broker has
// accepted every message in msgs (for RabbitMQ: publisher-confirmed; for the
// memory transport: enqueued on every bound queue). When it returns an error,
// any subset of msgs may have been accepted: callers that need at-least-once
// delivery (the outbox relay) publish the whole batch again, and replicas
// drop the duplicates by revision. A *PublishError says which messages
// failed, when the transport knows.
//
// A message that no queue is bound for is either dropped silently (Publish
// returns nil, as RabbitMQ does without mandatory and django-cqrs does) or
// listed in PublishError.Unroutable; each transport documents which. Publish
// does not retain msgs, their bodies or headers after it returns: callers
// may reuse them.
type Publisher interface {
	// Publish sends msgs; see the interface's documentation.
	Publish(ctx context.Context, msgs []Message) error
	// Close makes later Publish calls fail with ErrClosed. Publish calls
	// in progress either finish or fail; Close is idempotent and safe for
	// concurrent use.
	Close() error
}

// Subscriber opens subscriptions on replica queues. Close ends every
// subscription it opened (their deliveries channels close), and Subscribe
// returns ErrClosed afterwards. All its methods are safe for concurrent use.
type Subscriber interface {
	// Capabilities declares what the transport behind this subscriber can
	// do; consumers consult it instead of probing.
	Capable
	// Subscribe declares the queue (and its dead-letter queue) if needed,
	// binds it to every CQRS ID in params.CQRSIDs (broadcast and direct
	// routes), and starts delivering. The subscription ends when ctx is done
	// or Close is called.
	Subscribe(ctx context.Context, params *SubscribeParams) (Subscription, error)
	// Close ends every subscription this subscriber opened; their
	// unsettled deliveries go back to their queues. It is idempotent.
	Close() error
}

// SubscribeParams configures a subscription.
type SubscribeParams struct {
	// Queue is the replica service's queue name. Required.
	Queue string
	// CQRSIDs are the models this queue receives. Required.
	CQRSIDs []string
	// DeadLetterQueue is declared and bound beside Queue. Default
	// DeadLetterQueue(Queue).
	DeadLetterQueue string
	// Prefetch bounds the number of unacknowledged deliveries the transport
	// hands out at once. Default 1001, as django-cqrs.
	Prefetch int
}

// WithDefaults returns a copy of p with zero fields filled in.
func (p SubscribeParams) WithDefaults() SubscribeParams {
	if p.DeadLetterQueue == "" {
		p.DeadLetterQueue = DeadLetterQueue(p.Queue)
	}
	if p.Prefetch <= 0 {
		p.Prefetch = 1001
	}
	return p
}

// Validate reports what is missing from p.
func (p *SubscribeParams) Validate() error {
	var errs []error
	if p.Queue == "" {
		errs = append(errs, errors.New("transport: SubscribeParams.Queue is empty: set the replica service's queue name"))
	}
	if len(p.CQRSIDs) == 0 {
		errs = append(errs, errors.New("transport: SubscribeParams.CQRSIDs is empty: register at least one replica model"))
	}
	for _, name := range append([]string{p.Queue, p.DeadLetterQueue}, p.CQRSIDs...) {
		if strings.ContainsAny(name, ".*#") {
			errs = append(errs, fmt.Errorf("transport: name %q contains '.', '*' or '#': queue names and CQRS IDs are topic words", name))
		}
	}
	return errors.Join(errs...)
}

// Delivery is a message handed to a subscriber, to be acknowledged once.
type Delivery struct {
	Message
	// ID identifies the delivery within its subscription, for Ack and Nack.
	// It is never 0.
	ID uint64
	// Redelivered is true when the transport delivered this message before
	// and it was not acknowledged.
	Redelivered bool
	// Attempt is how many times the transport has delivered this message,
	// this delivery included (1 for the first), when it counts them; 0 when
	// it does not. It counts every delivery: those after a Close, a lost
	// connection or a Nack too (as JetStream's NumDelivered), so it is not
	// a retry count; see Delays.
	Attempt int
	// Delays is how many times Subscription.NackDelay returned this
	// message to its queue: the retries the broker kept, which the body
	// does not count. Redeliveries after a Close, a lost connection or a
	// Nack do not add to it. A transport that declares
	// Capabilities.DelayedRedelivery counts them; others leave 0. (A
	// JetStream transport would count its delayed naks itself, for
	// example in a header, since NumDelivered counts every delivery.)
	Delays int
}

// Subscription is a stream of deliveries from one queue.
//
// Deliveries, Ack and Nack are safe for concurrent use. Every delivery must
// be acknowledged (Ack) or rejected (Nack) exactly once; until then it counts
// against the prefetch window. A delivery that is never settled is delivered
// again after the subscription closes (at-least-once). Ack and Nack of an ID
// that is unknown or already settled return an error (settling the valid IDs
// of the same call); after the subscription ended they return an error
// wrapping ErrClosed. Close is idempotent.
type Subscription interface {
	// Deliveries returns the channel of incoming messages. It is closed when
	// the subscription ends; Err then says why.
	Deliveries() <-chan Delivery
	// Ack settles deliveries as processed: the broker forgets them.
	Ack(ctx context.Context, ids ...uint64) error
	// Nack settles deliveries as not processed. With requeue the broker
	// delivers them again (to this or another consumer); without, it drops
	// them (callers republish to a retry or dead-letter route first).
	// Nack with requeue returns an error wrapping ErrNotSupported, settling
	// nothing, unless the transport declares Capabilities.NackRequeue.
	Nack(ctx context.Context, requeue bool, ids ...uint64) error
	// NackDelay settles deliveries as not processed and has the broker
	// deliver them again, to this or another subscription, no sooner than
	// delay from now, marked Redelivered, with the same body. Meanwhile
	// they count against no prefetch window and the messages behind them
	// are delivered. A delay of 0 or less is Nack with requeue. It returns
	// an error wrapping ErrNotSupported, settling nothing, unless the
	// transport declares Capabilities.DelayedRedelivery; other errors as
	// for Ack.
	NackDelay(ctx context.Context, delay time.Duration, ids ...uint64) error
	// Err returns why the deliveries channel closed: nil after Close or a
	// cancelled context, otherwise the transport failure.
	Err() error
	// Close stops deliveries. Unsettled deliveries go back to the queue.
	Close() error
}

// PublishError reports which messages of a batch the broker did not accept.
type PublishError struct {
	// Failed holds the indexes (into the published slice) of the messages
	// that were not accepted. Nil when the transport cannot tell.
	Failed []int
	// Unroutable holds the indexes of messages the broker accepted but
	// could route to no queue (no replica is bound for their CQRS ID yet).
	// Publishing them again cannot help; they are not in Failed.
	Unroutable []int
	// Err is the underlying cause.
	Err error
}

// Error implements error.
func (e *PublishError) Error() string {
	if len(e.Failed) == 0 && len(e.Unroutable) > 0 {
		return fmt.Sprintf("transport: publish: %d message(s) unroutable (indexes %v): %v", len(e.Unroutable), e.Unroutable, e.Err)
	}
	if e.Failed == nil {
		return fmt.Sprintf("transport: publish: %v", e.Err)
	}
	return fmt.Sprintf("transport: publish: %d message(s) not accepted (indexes %v): %v", len(e.Failed), e.Failed, e.Err)
}

// Unwrap returns the cause.
func (e *PublishError) Unwrap() error { return e.Err }

// ErrClosed is returned by calls on a closed publisher, subscriber or
// subscription.
var ErrClosed = errors.New("transport: closed")

// ErrNotSupported is returned (wrapped) by an operation that the transport
// declares, in its [Capabilities], it cannot do. Callers check the declared
// capabilities first; the error only backs the declaration up.
var ErrNotSupported = errors.New("transport: not supported by this transport (see its Capabilities)")

// Capabilities declares what a transport can do. Each transport returns the
// same value from every Capabilities method it has (subscriber, dead-letter
// tools), for its whole life. The conformance suite
// (transport/transporttest) tests every declared capability and checks that
// the operations of an undeclared one return [ErrNotSupported].
type Capabilities struct {
	// PerQueueOrder: messages published to one queue in one Publish call,
	// and in successive Publish calls from one goroutine, whether broadcast
	// or aimed at the queue, are delivered in that order when nothing is
	// nacked or redelivered.
	PerQueueOrder bool

	// Durable: a queue declared by a Subscribe keeps the messages routed to
	// it while no subscription is open, and delivers them to the next one.
	Durable bool

	// Expiration: the transport drops a message whose
	// [Message.Expiration] passed while it waited in a queue. Without it,
	// Expiration is ignored.
	Expiration bool

	// Prefetch: a subscription never has more than
	// [SubscribeParams.Prefetch] unsettled deliveries outstanding.
	Prefetch bool

	// ReportsUnroutable: Publish reports a message that no queue is bound to
	// receive in [PublishError.Unroutable], after accepting the batch's
	// other messages. Without it such a message is dropped silently and
	// Publish returns nil. Either way it reaches no queue.
	ReportsUnroutable bool

	// DirectToQueue: a [Message.IntoQueue] message reaches its queue
	// whatever that queue is subscribed to. Without it, IntoQueue is
	// ignored and the message is routed by CQRSID and Queue.
	DirectToQueue bool

	// NackRequeue: [Subscription.Nack] with requeue returns one delivery to
	// its queue, to be delivered again, while the deliveries after it go on
	// (a per-message requeue, as RabbitMQ's basic.nack). A log-based
	// transport, which can only rewind a partition, does not declare it.
	NackRequeue bool

	// DelayedRedelivery: [Subscription.NackDelay] returns deliveries to
	// their queue after a delay kept by the broker, and deliveries carry
	// their [Delivery.Attempt] and [Delivery.Delays]. A consumer then waits for a retry on the
	// broker instead of holding the event in its own memory (and prefetch
	// window). RabbitMQ has no delayed redelivery without plugins.
	DelayedRedelivery bool

	// DeadLetterBrowse: the transport's [DeadLetterBrowser] lists the
	// messages in a dead-letter queue without removing them.
	DeadLetterBrowse bool

	// DeadLetterRemove: the transport's [DeadLetterRemover] removes
	// individual dead letters and purges dead-letter queues. A transport
	// that keeps dead letters on an append-only log browses and
	// re-publishes them but does not declare it.
	DeadLetterRemove bool
}

// Capable is implemented by everything that declares a transport's
// capabilities: every [Subscriber] and [DeadLetterBrowser].
type Capable interface {
	// Capabilities returns what the transport can do. It is safe for
	// concurrent use, cheap, and returns the same value every time.
	Capabilities() Capabilities
}

// DeadLetterAction is what a [DeadLetterRemover.ScanDeadLetters] callback decides
// for one dead letter.
type DeadLetterAction int

const (
	// DeadLetterKeep leaves the message in the dead-letter queue.
	DeadLetterKeep DeadLetterAction = iota
	// DeadLetterRemove deletes the message from the dead-letter queue. A
	// callback that re-publishes the message returns it only after that
	// publish returned nil, so nothing is lost between the two queues.
	DeadLetterRemove
)

// DeadLetterBrowser lists dead letters without removing them. Transports
// that keep dead letters implement it beside Publisher and Subscriber; its
// methods are safe for concurrent use.
type DeadLetterBrowser interface {
	Capable
	// BrowseDeadLetters calls fn once for each message that is in the
	// dead-letter queue dlq when the browse starts, oldest first, and removes
	// none of them; messages that arrive meanwhile are not visited. It stops
	// at the first error from fn and returns it wrapped. Browsing settles
	// nothing: a message a consumer of dlq holds unacknowledged may be
	// skipped. It returns an
	// error wrapping ErrNotSupported unless the transport declares
	// Capabilities.DeadLetterBrowse.
	BrowseDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *Message) error) error
}

// DeadLetterRemover removes dead letters. Its methods return an error
// wrapping ErrNotSupported, removing nothing, unless the transport declares
// Capabilities.DeadLetterRemove; they are safe for concurrent use.
type DeadLetterRemover interface {
	// ScanDeadLetters calls fn once for each message that is in the
	// dead-letter queue dlq when the scan starts, oldest first, and applies
	// the action fn returns. It stops at the first error from fn (that
	// message and the rest stay) and returns how many messages were removed.
	// Messages that arrive during the scan are not visited. Removal is
	// at-least-once: a message whose removal the broker did not record
	// before a connection loss stays.
	ScanDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *Message) (DeadLetterAction, error)) (removed int, err error)
	// PurgeDeadLetters removes every message from dlq that no consumer
	// holds unacknowledged, and returns how many.
	PurgeDeadLetters(ctx context.Context, dlq string) (int, error)
}

// DeadLetters is a transport's dead-letter tools: browsing always, removal
// where the transport declares Capabilities.DeadLetterRemove (otherwise the
// DeadLetterRemover methods return ErrNotSupported).
type DeadLetters interface {
	DeadLetterBrowser
	DeadLetterRemover
}

// KeepAll adapts a browse callback to a [DeadLetterRemover.ScanDeadLetters]
// callback that keeps every message: a transport whose removal scan can
// also browse implements BrowseDeadLetters with it.
func KeepAll(fn func(ctx context.Context, m *Message) error) func(ctx context.Context, m *Message) (DeadLetterAction, error) {
	return func(ctx context.Context, m *Message) (DeadLetterAction, error) {
		return DeadLetterKeep, fn(ctx, m)
	}
}

// ErrQueueNotFound is returned, wrapped, by [Inspector.QueueDepth] for a
// queue the broker does not have (no consumer declared it yet).
var ErrQueueNotFound = errors.New("transport: queue not found")

// Inspector is implemented by the transports that can report on their
// broker, for health checks and metrics (package hook/promhook, and the
// --listen endpoints of cqrsync relay and consume); RabbitMQ's does. It is
// optional: find it with a type assertion on a Publisher or Subscriber. Its
// methods are safe for concurrent use and bounded by ctx.
type Inspector interface {
	// Ping returns nil when the broker answers now over the transport's
	// connection, and otherwise an error that says why.
	Ping(ctx context.Context) error
	// QueueDepth returns how many messages wait in queue ready for delivery
	// (those delivered and not yet acknowledged are not counted). A queue
	// that does not exist returns an error wrapping [ErrQueueNotFound].
	QueueDepth(ctx context.Context, queue string) (int, error)
}

// Package nats is the NATS JetStream transport of cqrsync, built on
// github.com/nats-io/nats.go's jetstream package. It is for services that
// outgrow one RabbitMQ queue: several processes share a replica queue while
// each row's events stay in order. It does not speak to django-cqrs: only
// the RabbitMQ transport does (the bodies are the same django-cqrs JSON, but
// Django services have no NATS client).
//
//	t, err := nats.New(ctx, &nats.Config{
//		URL:          "nats://127.0.0.1:4222",
//		Partitions:   8,
//		PartitionKey: cqrsync.PartitionKey,
//	})
//	if err != nil { ... }
//	defer t.Close()
//	// t is a transport.Publisher, a transport.Subscriber and a transport.DeadLetters.
//
// # Topology
//
// One exchange ([Config.Exchange], "cqrs" by default) is one stream
// ([Config.Stream]) with interest retention: a message stays until every
// replica queue it is for has acknowledged it. Its subjects carry the
// partition, the cqrs_id and, for a message aimed at one queue, the queue:
//
//	<exchange>.m.<partition>.<cqrs_id>          broadcast SAVE, DELETE, SYNC
//	<exchange>.m.<partition>.<cqrs_id>.<queue>  SYNC to one queue, its retries
//	<exchange>.dl.<dead-letter queue>.<cqrs_id> dead letters, in the stream <stream>_dead_letters
//
// A replica queue is one durable pull consumer per partition, named after
// the queue ("<queue>" with one partition, "<queue>_p<k>" with several),
// filtered on "<exchange>.m.<k>.>", with explicit acks, [Config.AckWait] and
// MaxAckPending = the subscription's prefetch. The subscription hands out
// the broadcasts of its CQRS IDs and the messages aimed at its queue, and
// acknowledges the others unseen (a 2.9 server allows one filter subject per
// consumer). Subscribe records the queue and its dead-letter queue in the
// key-value bucket <stream>_queues, which tells Publish where a message
// aimed at a queue goes: into the queue's subjects, or into the dead-letter
// stream. A message for a CQRS ID nobody subscribes to, or for an unknown
// queue, is dropped silently, as django-cqrs drops it.
//
// # Partitions and per-key order
//
// JetStream keeps a consumer's messages in order, but several pullers on
// one durable consumer take turns in batches, so two processes would apply
// one row's events in parallel and out of order. This transport therefore
// never lets two subscriptions pull one partition at once:
//
//   - Publish puts each message in partition hash([Config.PartitionKey]) mod
//     [Config.Partitions]; with cqrsync.PartitionKey, every event of one row
//     goes to one partition, in capture order.
//   - Each subscription of a queue claims a member slot, and the member of
//     rank r among n live members pulls the partitions k with k mod n == r.
//     It pulls a partition only while it holds the partition's lease, a key
//     created only when absent in the bucket <stream>_leases, whose entries
//     expire [Config.LeaseTTL] after their last renewal (every third of it).
//   - A subscription that gives a partition up (a new member joined, or it
//     closes) stops pulling it, waits until the deliveries it handed out are
//     settled (closing nacks them back), and only then deletes the lease; the
//     next owner starts with the oldest unsettled message.
//   - A subscription that dies holds its leases until they expire; its
//     unsettled messages come back after AckWait, as redeliveries, possibly
//     after newer events of the same rows that the next owner already
//     applied: the replica's revision guard drops them as stale (the
//     scale-out test counts them). First deliveries stay in order.
//
// So up to Partitions processes share a queue's load. With one partition
// (the default) one subscription pulls and the others stand by, and
// Capabilities.PerQueueOrder holds; with several, order holds per
// partition, not per queue. Every client of an exchange uses the same
// partition count: the stream records it and [New] refuses another.
//
// # Settling, retries and expiration
//
// Ack sends a JetStream ack; Nack with requeue a nak (redelivered at once,
// the messages behind it go on); Nack without requeue an ack (dropped).
// NackDelay is a nak with a delay kept by the server: nothing waits in the
// consumer's memory. JetStream counts every delivery (NumDelivered is
// [transport.Delivery.Attempt]) but not why; the transport counts the
// delayed naks of a message in the bucket <stream>_retries under its
// stream sequence ([transport.Delivery.Delays]; kept [Config.RetryMemory]).
//
// A message with an Expiration carries its deadline (by the publisher's
// clock, as the body's expires) in a header of its own;
// the subscription acknowledges and drops a message whose deadline passed
// instead of handing it out. A NATS 2.9 server has no per-message TTL (2.11
// added one, which needs a stream created for it); the django-cqrs
// "expires" in the body is checked by the consumer as on every transport.
//
// Headers travel as NATS headers; those whose names start with
// "Cqrsync-Nats-" or "Nats-" are the transport's or the server's and are not
// handed out.
//
// # Reconnection
//
// The client reconnects forever ([Config.ReconnectWait]). Publish calls
// whose acknowledgements were lost fail with a [transport.PublishError]
// listing those messages (publish them again; replicas drop duplicates by
// revision). Subscriptions keep their Deliveries channel open and resume
// pulling; acks sent while the connection was down are lost, so those
// messages come again after AckWait. A subscription ends with an error only
// when its consumer is gone (deleted).
//
// # Dead letters
//
// Dead letters are messages of the stream <stream>_dead_letters (limits
// retention: kept until removed). [Transport.BrowseDeadLetters] and
// [Transport.ScanDeadLetters] read them with an ordered consumer filtered on
// the queue's subjects; a removed one is deleted by its sequence;
// [Transport.PurgeDeadLetters] purges the queue's subjects.
//
// # Servers
//
// Tested against nats-server 2.9.10 (Debian's). Two of its traits shape the
// code: it keeps delivering into a pull request whose subscriber went away,
// so a subscription pulls with Fetch requests that expire after
// [Config.PullWait] and lets the last one end before it nacks what it holds
// (a Close takes up to PullWait); and updating a consumer confuses its
// redeliveries, so Subscribe updates one only when its settings changed.
package nats

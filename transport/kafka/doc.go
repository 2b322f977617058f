// Package kafka is a cqrsync transport on Apache Kafka, built on franz-go
// (kgo, kadm). It implements [transport.Publisher], [transport.Subscriber]
// and [transport.DeadLetters] on one [Transport], and passes the
// [transporttest] conformance suite with the capabilities it declares.
//
//	tr, err := kafka.New(ctx, &kafka.Config{Brokers: []string{"kafka1:9092", "kafka2:9092"}})
//
// Kafka does not speak to django-cqrs: Django services reach a cqrsync mesh
// only through RabbitMQ (transport/rabbitmq). Bodies are django-cqrs's
// payloads, byte for byte, so a bridge can move them between the two.
//
// # Topology
//
// For an exchange E (Config.Exchange, default "cqrs"):
//
//	E                     broadcasts of every model (Config.Partitions partitions)
//	E.<cqrs_id>           with Config.TopicPerModel, broadcasts of one model instead
//	E.queue.<queue>       one replica queue's own topic: messages aimed at the
//	                      queue (a SYNC to one replica, IntoQueue) and its retries
//	E.dead.<dlq>          a dead-letter queue (one partition, cleanup.policy=compact)
//	group E.<queue>       the consumer group of a replica queue
//
// Subscribe creates the topics it needs, and commits the end offsets of
// the partitions its group has no offsets for: from then on the queue
// receives what is published whether or not a consumer runs, as a declared
// RabbitMQ queue does (Durable). Publish creates a broadcast topic on first
// use. A message aimed at a queue that no Subscribe declared (its topic does
// not exist) is dropped, as RabbitMQ drops an unroutable message; an
// IntoQueue one fails instead.
//
// Records are keyed by [Config.Key], by default [RowKey]: the CQRS ID and
// the body's instance_pk, so that the events of one row go to one partition
// and are delivered in order. Routing facts travel in record headers named
// "x-cqrsync-kafka-*" (the CQRS ID, the target queue, the expiry); they never
// appear in a delivery's Headers, and message headers with that prefix are
// not carried.
//
// # Consumer groups and scale-out
//
// Every Subscribe is one member of the queue's consumer group: several
// processes (or subscriptions) on one queue share its partitions, and a
// member that leaves or dies hands its partitions to the others. A member
// reads its partitions in parallel and filters what its queue does not take
// (broadcasts of models it does not register); the cqrsync consumer applies
// one row's events in order. The order of a queue as a whole is not kept
// (PerQueueOrder is not declared): only one key's order is. A member that
// loses partitions in a rebalance stops delivering from them, waits up to
// Config.RevokeWait for what it delivered from them to be settled, and
// commits before it lets them go, so the new owner starts where it
// stopped.
//
// Offsets are committed only past settled deliveries: a record is settled
// by Ack, by Nack without requeue, and by Nack with requeue or NackDelay
// once its copy is on the queue's topic. The commit of a partition stops at
// its oldest unsettled record, so a member killed mid-batch loses nothing:
// the next owner starts there. What it had delivered beyond that is
// delivered again, marked Redelivered (the commit's metadata says how far
// the member delivered); a member killed without a final commit leaves no
// such mark. Replicas drop the duplicates by revision.
//
// # Retries
//
// Nack with requeue and NackDelay publish a copy of the delivery to the
// queue's own topic, with its delivery and delay counts and, for NackDelay,
// a not-before time, then settle the original. A member holds a copy until
// its not-before passes (it counts against no prefetch window; past
// Config.MaxHeld held copies the member stops fetching its queue topic), and
// its partition's commit waits for it, so a crash loses no retry. A retried
// event leaves its row's partition order: events behind it are applied
// first, and the replica drops the retry if a newer revision got there.
//
// # Dead letters
//
// A log cannot delete one record. Dead letters are removed with tombstones:
// ScanDeadLetters and PurgeDeadLetters write, for each removed dead letter,
// a record with its (unique) key and no value. Browsing and scanning skip
// dead letters that have a tombstone, and Kafka's log compaction deletes
// both for good later (after the topic's delete.retention.ms). Purge thus
// means: every dead letter there now is tombstoned, invisible to the tools
// at once and gone from the disks after compaction. Dead letters whose
// Expiration passed are skipped too, and compacted away only once
// tombstoned; set the topic's retention to bound its size.
//
// # Testing without Kafka
//
// cqrsync's own tests (and `cqrsync bench --transport kafka://kfake`) run
// against franz-go's in-process cluster, kfake
// (github.com/twmb/franz-go/pkg/kfake): there is no Kafka server on the
// test machines. kfake implements the protocol, consumer groups,
// compaction and transactions, but it is not Kafka: its figures are not a
// Kafka cluster's.
//
// [transporttest]: https://pkg.go.dev/github.com/cqrsync/cqrsync/transport/transporttest
package kafka

package cqrsync

import (
	"github.com/cqrsync/cqrsync/internal/ujson"
	"github.com/cqrsync/cqrsync/transport"
)

// PartitionKey returns the key by which a partitioning transport spreads
// events (transport/nats's Config.PartitionKey): the message's CQRS ID and
// the raw JSON of its body's instance_pk, so that every event of one row
// lands in one partition and keeps its order there, while different rows
// spread. A body whose instance_pk cannot be found gives the CQRS ID alone
// (still one partition per model). It reads the body without decoding it
// and keeps nothing of it.
func PartitionKey(m *transport.Message) []byte {
	key := make([]byte, 0, len(m.CQRSID)+24)
	key = append(key, m.CQRSID...)
	key = append(key, 0)
	if start, end, ok := ujson.TopLevelValue(m.Body, "instance_pk"); ok {
		key = append(key, m.Body[start:end]...)
	}
	return key
}

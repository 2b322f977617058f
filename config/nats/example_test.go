package nats_test

import (
	"fmt"

	confignats "github.com/cqrsync/cqrsync/config/nats"
)

// ExampleParseURL shows the settings a nats:// transport URL carries.
func ExampleParseURL() {
	cfg, err := confignats.ParseURL("nats://user:secret@nats:4222?partitions=8&ack_wait=1m")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Partitions, cfg.AckWait, cfg.PartitionKey != nil)
	_, err = confignats.ParseURL("nats://user:secret@nats:4222?partition=8")
	fmt.Println(err)
	// Output:
	// 8 1m0s true
	// nats: unknown URL parameter "partition": use partitions, stream, ack_wait or lease_ttl
}

package nats_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/nats"
)

// Example publishes an event and receives it on a replica queue. It needs
// a NATS server with JetStream, so it is compiled but not run by go test
// (the package's tests run the same against the real server).
func Example() {
	ctx := context.Background()
	t, err := nats.New(ctx, &nats.Config{
		URL:          "nats://127.0.0.1:4222",
		Exchange:     "example",
		Partitions:   4,
		PartitionKey: cqrsync.PartitionKey, // one row's events share a partition
	})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()

	sub, err := t.Subscribe(ctx, &transport.SubscribeParams{Queue: "billing", CQRSIDs: []string{"account"}})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	body := []byte(`{"signal_type":"SAVE","cqrs_id":"account","instance_pk":1}`)
	if err := t.Publish(ctx, []transport.Message{{CQRSID: "account", Body: body}}); err != nil {
		log.Fatal(err)
	}
	d := <-sub.Deliveries()
	fmt.Println(d.CQRSID, string(d.Body))
	if err := sub.Ack(ctx, d.ID); err != nil {
		log.Fatal(err)
	}
}

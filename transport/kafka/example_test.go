package kafka_test

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/kafka"
)

// A replica queue receives a broadcast, and a SYNC aimed at it alone; the
// cluster is franz-go's in-process kfake, as in cqrsync's tests.
func Example() {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()

	tr, err := kafka.New(ctx, &kafka.Config{Brokers: cluster.ListenAddrs()})
	if err != nil {
		panic(err)
	}
	defer tr.Close()

	sub, err := tr.Subscribe(ctx, &transport.SubscribeParams{Queue: "billing", CQRSIDs: []string{"account"}})
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	err = tr.Publish(ctx, []transport.Message{
		{CQRSID: "account", Body: []byte(`{"signal_type":"SAVE","cqrs_id":"account","instance_pk":1}`)},
	})
	if err != nil {
		panic(err)
	}
	d := <-sub.Deliveries()
	fmt.Printf("%s to %q: %s\n", d.CQRSID, d.Queue, d.Body)
	if err := sub.Ack(ctx, d.ID); err != nil {
		panic(err)
	}

	err = tr.Publish(ctx, []transport.Message{
		{CQRSID: "account", Queue: "billing", Body: []byte(`{"signal_type":"SYNC","cqrs_id":"account","instance_pk":1}`)},
	})
	if err != nil {
		panic(err)
	}
	d = <-sub.Deliveries()
	fmt.Printf("%s to %q: %s\n", d.CQRSID, d.Queue, d.Body)
	if err := sub.Ack(ctx, d.ID); err != nil {
		panic(err)
	}
	// Output:
	// account to "": {"signal_type":"SAVE","cqrs_id":"account","instance_pk":1}
	// account to "billing": {"signal_type":"SYNC","cqrs_id":"account","instance_pk":1}
}

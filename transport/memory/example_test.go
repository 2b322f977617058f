package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/amqptopology"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// A master publishes an event; the replica service's subscription receives
// it and acknowledges it.
func Example() {
	ctx := context.Background()
	broker := memory.NewBroker(nil)

	// The replica subscribes first: that declares its queue
	// "billing_replica" and binds it to the models it replicates.
	sub := broker.Subscriber()
	defer sub.Close()
	s, err := sub.Subscribe(ctx, &transport.SubscribeParams{
		Queue:   "billing_replica",
		CQRSIDs: []string{"account"},
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	pub := broker.Publisher()
	defer pub.Close()
	err = pub.Publish(ctx, []transport.Message{
		{CQRSID: "account", Body: []byte(`{"signal_type":"SAVE","cqrs_id":"account"}`)},
		{CQRSID: "account", Queue: "billing_replica", Body: []byte(`{"signal_type":"SYNC","cqrs_id":"account"}`)},
	})
	if err != nil {
		panic(err)
	}

	for range 2 {
		d := <-s.Deliveries()
		fmt.Printf("%s %s redelivered=%v\n", amqptopology.RoutingKey(&d.Message), d.Body, d.Redelivered)
		if err := s.Ack(ctx, d.ID); err != nil {
			panic(err)
		}
	}
	fmt.Println("left in queue:", broker.QueueLen("billing_replica"))
	// Output:
	// account {"signal_type":"SAVE","cqrs_id":"account"} redelivered=false
	// cqrs.billing_replica.account {"signal_type":"SYNC","cqrs_id":"account"} redelivered=false
	// left in queue: 0
}

// A test cuts the broker's connections under a consumer: the subscription
// ends with ErrConnectionLost, and what it had not acknowledged is delivered
// again to the next subscription.
func ExampleBroker_CutConnections() {
	ctx := context.Background()
	broker := memory.NewBroker(nil)
	params := &transport.SubscribeParams{Queue: "billing_replica", CQRSIDs: []string{"account"}}
	sub := broker.Subscriber()
	defer sub.Close()

	s, _ := sub.Subscribe(ctx, params)
	_ = broker.Publisher().Publish(ctx, []transport.Message{{CQRSID: "account", Body: []byte("event 1")}})
	<-s.Deliveries() // received, never acknowledged

	broker.CutConnections()
	_, open := <-s.Deliveries()
	fmt.Println("open:", open, "lost:", errors.Is(s.Err(), memory.ErrConnectionLost))

	s, _ = sub.Subscribe(ctx, params)
	d := <-s.Deliveries()
	fmt.Printf("%s redelivered=%v\n", d.Body, d.Redelivered)
	_ = s.Ack(ctx, d.ID)
	// Output:
	// open: false lost: true
	// event 1 redelivered=true
}

// Dead letters are listed, retried to the replica queue, and removed.
func ExampleBroker_ScanDeadLetters() {
	ctx := context.Background()
	broker := memory.NewBroker(nil)
	if err := broker.DeclareQueue("billing_replica", "account"); err != nil {
		panic(err)
	}
	pub := broker.Publisher()
	dlq := transport.DeadLetterQueue("billing_replica")
	_ = pub.Publish(ctx, []transport.Message{
		{CQRSID: "account", Queue: dlq, Body: []byte("failed 1")},
		{CQRSID: "account", Queue: dlq, Body: []byte("failed 2")},
	})

	removed, err := broker.ScanDeadLetters(ctx, dlq, func(ctx context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		fmt.Printf("retrying %s from %s\n", m.Body, amqptopology.RoutingKey(m))
		retry := *m
		retry.Queue = "billing_replica"
		if err := pub.Publish(ctx, []transport.Message{retry}); err != nil {
			return transport.DeadLetterKeep, err
		}
		return transport.DeadLetterRemove, nil
	})
	fmt.Println("removed:", removed, err)
	fmt.Println("dead letters:", broker.QueueLen(dlq), "queue:", broker.QueueLen("billing_replica"))
	// Output:
	// retrying failed 1 from cqrs.dead_letter_billing_replica.account
	// retrying failed 2 from cqrs.dead_letter_billing_replica.account
	// removed: 2 <nil>
	// dead letters: 0 queue: 2
}

package rabbitmq_test

import (
	"context"
	"errors"
	"log"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// A master publishes a batch and learns exactly which messages the broker did
// not confirm. (Compile-only: it needs a broker.)
func Example_publish() {
	ctx := context.Background()
	t, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: "amqp://guest:guest@localhost:5672/"})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()

	msgs := []transport.Message{
		{CQRSID: "account", Body: []byte(`{"signal_type":"SAVE","cqrs_id":"account"}`)},
		{CQRSID: "account", Queue: "billing_replica", Body: []byte(`{"signal_type":"SYNC","cqrs_id":"account"}`)},
	}
	err = t.Publish(ctx, msgs)
	var pe *transport.PublishError
	switch {
	case err == nil:
		// Every message is on the broker.
	case errors.As(err, &pe):
		log.Printf("not accepted: %v (%v)", pe.Failed, pe.Err)
	default:
		log.Fatal(err)
	}
}

// A replica consumes its queue, committing deliveries in batches and acking
// each batch with one multiple ack. (Compile-only: it needs a broker.)
func Example_subscribe() {
	ctx := context.Background()
	t, err := rabbitmq.New(ctx, nil) // all defaults: guest@localhost, exchange "cqrs"
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()

	sub, err := t.Subscribe(ctx, &transport.SubscribeParams{
		Queue:   "billing_replica",
		CQRSIDs: []string{"account", "invoice"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	var batch []uint64
	for d := range sub.Deliveries() {
		// ... apply d.Body for d.CQRSID in the current DB transaction ...
		batch = append(batch, d.ID)
		if len(batch) == 100 {
			// ... commit ...
			if err := sub.Ack(ctx, batch...); errors.Is(err, rabbitmq.ErrDeliveryRequeued) {
				log.Print("connection lost before the ack: the batch comes again")
			}
			batch = batch[:0]
		}
	}
	log.Print("subscription ended: ", sub.Err())
}

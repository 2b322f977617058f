package tools_test

import (
	"context"
	"fmt"
	"os"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// An operator lists the dead letters of a replica queue with their reasons,
// then purges those of one model.
func Example() {
	ctx := context.Background()
	broker := memory.NewBroker(nil)
	// Subscribing declares the queue "billing" and its dead-letter queue.
	sub := broker.Subscriber()
	defer sub.Close()
	s, err := sub.Subscribe(ctx, &transport.SubscribeParams{Queue: "billing", CQRSIDs: []string{"account"}})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	// What a consumer does with an event it cannot apply.
	dlq := transport.DeadLetterQueue("billing")
	pub := broker.Publisher()
	defer pub.Close()
	err = pub.Publish(ctx, []transport.Message{{
		CQRSID: "account", Queue: dlq, Body: []byte(`not json`),
		Headers: map[string]string{cqrsync.HeaderDeadLetterReason: "malformed payload"},
	}})
	if err != nil {
		panic(err)
	}

	if _, err := tools.DumpDeadLettersJSONL(ctx, broker, dlq, nil, os.Stdout); err != nil {
		panic(err)
	}
	n, err := tools.PurgeDeadLetters(ctx, broker, dlq, &tools.DeadLetterFilter{CQRSIDs: []string{"account"}})
	fmt.Println("purged:", n, err)
	// Output:
	// {"cqrs_id":"account","reason":"malformed payload","dead_lettered_at":null,"body":"not json"}
	// purged: 1 <nil>
}

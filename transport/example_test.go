package transport_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// A tool consults what the transport declares before it removes a dead
// letter: browsing works on every transport that keeps dead letters,
// removal only where Capabilities.DeadLetterRemove says so.
func Example_capabilities() {
	ctx := context.Background()
	broker := memory.NewBroker(nil)
	if err := broker.DeclareQueue("billing", "account"); err != nil {
		panic(err)
	}
	var dl transport.DeadLetters = broker
	dlq := transport.DeadLetterQueue("billing")

	pub := broker.Publisher()
	defer pub.Close()
	err := pub.Publish(ctx, []transport.Message{{
		CQRSID: "account", Queue: dlq, IntoQueue: true, Body: []byte(`{"cqrs_id":"account"}`),
		Headers: map[string]string{"x-reason": "constraint failed"},
	}})
	if err != nil {
		panic(err)
	}

	err = dl.BrowseDeadLetters(ctx, dlq, func(_ context.Context, m *transport.Message) error {
		fmt.Printf("%s in %s: %s (%s)\n", m.CQRSID, m.Queue, m.Body, m.Headers["x-reason"])
		return nil
	})
	if err != nil {
		panic(err)
	}

	if !dl.Capabilities().DeadLetterRemove {
		fmt.Println("this transport keeps dead letters until its retention ends")
		return
	}
	n, err := dl.PurgeDeadLetters(ctx, dlq)
	if errors.Is(err, transport.ErrNotSupported) {
		panic("the transport declared DeadLetterRemove but cannot remove")
	}
	fmt.Println("purged", n, err)
	// Output:
	// account in dead_letter_billing: {"cqrs_id":"account"} (constraint failed)
	// purged 1 <nil>
}

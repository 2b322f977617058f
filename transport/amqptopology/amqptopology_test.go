package amqptopology_test

import (
	"fmt"
	"testing"

	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/amqptopology"
)

func TestRoutingKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		m      transport.Message
		key    string
		id, qu string
	}{
		{transport.Message{CQRSID: "account"}, "account", "account", ""},
		{transport.Message{CQRSID: "account", Queue: "billing"}, "cqrs.billing.account", "account", "billing"},
		{transport.Message{CQRSID: "account", Queue: "dead_letter_billing"}, "cqrs.dead_letter_billing.account", "account", "dead_letter_billing"},
	} {
		if got := amqptopology.RoutingKey(&tc.m); got != tc.key {
			t.Errorf("RoutingKey(%+v) = %q, want %q", tc.m, got, tc.key)
		}
		if id, q := amqptopology.ParseRoutingKey(tc.key); id != tc.id || q != tc.qu {
			t.Errorf("ParseRoutingKey(%q) = %q, %q; want %q, %q", tc.key, id, q, tc.id, tc.qu)
		}
	}
	into := transport.Message{CQRSID: "account", Queue: "dead_letter_billing", IntoQueue: true}
	if got := amqptopology.RoutingKey(&into); got != "dead_letter_billing" {
		t.Errorf("RoutingKey(IntoQueue) = %q, want the queue's name", got)
	}
}

func ExampleRoutingKey() {
	for _, m := range []transport.Message{
		{CQRSID: "account"},
		{CQRSID: "account", Queue: "billing"},
		{CQRSID: "account", Queue: "dead_letter_billing", IntoQueue: true},
	} {
		fmt.Println(amqptopology.RoutingKey(&m))
	}
	// Output:
	// account
	// cqrs.billing.account
	// dead_letter_billing
}

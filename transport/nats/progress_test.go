package nats_test

import (
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/transport"
)

// TestHeldDeliveryIsNotRedelivered: a delivery held unsettled for longer
// than AckWait (a slow apply, a database stall the consumer waits out) is
// kept in progress: JetStream does not deliver it a second time meanwhile,
// and once acked it does not come back.
func TestHeldDeliveryIsNotRedelivered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	cfg := b.config(b.url)
	cfg.AckWait = time.Second
	tr := open(t, cfg)
	p := &transport.SubscribeParams{Queue: "held", CQRSIDs: []string{"item"}}
	s, err := tr.Subscribe(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := tr.Publish(ctx, []transport.Message{{CQRSID: "item", Body: []byte(`{"n":1}`)}}); err != nil {
		t.Fatal(err)
	}
	var first transport.Delivery
	select {
	case first = <-s.Deliveries():
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	// Hold it for 3.5 × AckWait.
	select {
	case d := <-s.Deliveries():
		t.Fatalf("delivered again while held (attempt %d, redelivered %v)", d.Attempt, d.Redelivered)
	case <-time.After(3500 * time.Millisecond):
	}
	if err := s.Ack(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-s.Deliveries():
		t.Fatalf("delivered again after its ack (attempt %d)", d.Attempt)
	case <-time.After(2 * time.Second):
	}
}

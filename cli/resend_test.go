package cli_test

import (
	"context"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/transport"
)

// TestResend: `cqrsync resend` answers a replica's resend request with a
// SYNC of the key to that replica's queue alone, through the outbox; it
// refuses to run without the master's resend queue.
func TestResend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	run(t, b.master, "", "resend").fails(t, cli.ExitUsage, "master.resend_queue")

	withQueue := &cli.Options{Setup: func(ctx context.Context, req *cli.SetupRequest) (*cli.App, error) {
		app, err := b.master.Setup(ctx, req)
		if err == nil {
			app.ResendQueue = "djpeer_master"
		}
		return app, err
	}}
	bg := start(t, withQueue, "resend", "--log-level", "info")
	bg.waitFor(t, "answering resend requests on queue djpeer_master")
	pub := b.broker.Publisher()
	defer pub.Close()
	req := `{"cqrs_id": "djpeer_basic", "instance_pk": 1, "queue": "djpeer_replica", "reason": "gap"}`
	if err := pub.Publish(t.Context(), []transport.Message{{CQRSID: cqrsync.ResendCQRSID, Queue: "djpeer_master", Body: []byte(req)}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the SYNC of key 1 to djpeer_replica in the outbox", func() bool {
		return count(t, b.masterDB, "SELECT COUNT(*) FROM cqrs_outbox WHERE queue = 'djpeer_replica'") == 1
	})
	var body []byte
	if err := b.masterDB.QueryRow("SELECT body FROM cqrs_outbox WHERE queue = 'djpeer_replica'").Scan(&body); err != nil {
		t.Fatal(err)
	}
	if p, err := cqrsync.DecodePayload(body, time.Now()); err != nil || p.SignalType != cqrsync.SignalSync || p.CQRSID != "djpeer_basic" {
		t.Fatalf("the answer: %+v, %v", p, err)
	}
	res := bg.stop()
	res.ok(t)
}

package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/cli"
)

func TestSync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	if err := b.broker.DeclareQueue("billing", "djpeer_basic"); err != nil {
		t.Fatal(err)
	}
	if err := b.broker.DeclareQueue("other", "djpeer_basic"); err != nil {
		t.Fatal(err)
	}
	filter := `{"char_field__in": ["case:basic_sync_all", "case:basic_sync_queue"]}`

	r := run(t, b.master, "", "sync", "--cqrs-id", "djpeer_basic", "-f", filter, "--dry-run")
	r.ok(t)
	if r.out != "Dry run: would sync 2 instance(s) of djpeer_basic to every replica queue; 2 instance(s) processed. Nothing was sent.\n" ||
		b.broker.QueueLen("billing") != 0 || count(t, b.masterDB, "SELECT COUNT(*) FROM cqrs_outbox") != 0 {
		t.Fatalf("dry run: %q", r.out)
	}

	// To one queue, sent before the command exits: django-cqrs's output.
	r = run(t, b.master, "", "sync", "--cqrs-id", "djpeer_basic", "-f", filter, "-q", "billing")
	r.ok(t)
	if want := "Done!\n2 instance(s) synced.\n2 instance(s) processed.\n"; r.out != want || r.errOut != "" {
		t.Fatalf("sync: stdout %q, stderr %q", r.out, r.errOut)
	}
	if b.broker.QueueLen("billing") != 2 || b.broker.QueueLen("other") != 0 || count(t, b.masterDB, "SELECT COUNT(*) FROM cqrs_outbox") != 0 {
		t.Fatalf("queues %d/%d", b.broker.QueueLen("billing"), b.broker.QueueLen("other"))
	}

	// --no-wait leaves the events to a relay; outbox status shows them.
	r = run(t, b.master, "", "sync", "-c", "djpeer_basic", "--no-wait", "-b", "5")
	r.ok(t)
	if !strings.Contains(r.errOut, "22 SYNC event(s) are in the outbox") || !strings.HasSuffix(r.out, "22 instance(s) processed.\n") {
		t.Fatalf("--no-wait: stdout %q, stderr %q", r.out, r.errOut)
	}
	r = run(t, b.master, "", "outbox", "status", "--json")
	r.ok(t)
	var status struct {
		Rows   int64    `json:"rows"`
		Oldest *string  `json:"oldest"`
		Age    *float64 `json:"oldest_age_seconds"`
	}
	if err := json.Unmarshal([]byte(r.out), &status); err != nil || status.Rows != 22 || status.Oldest == nil || status.Age == nil {
		t.Fatalf("outbox status --json: %q (%v)", r.out, err)
	}
	r = run(t, b.master, "", "outbox", "status")
	r.ok(t)
	if !strings.HasPrefix(r.out, "outbox: 22 event(s) waiting, the oldest captured ") {
		t.Fatalf("outbox status: %q", r.out)
	}

	relay := start(t, b.master, "relay", "--poll-interval", "1ms")
	relay.waitFor(t, "relaying the outbox to the broker (polling every 1ms)")
	eventually(t, "the relay to send the SYNCs", func() bool { return b.broker.QueueLen("other") == 22 })
	res := relay.stop()
	res.ok(t)
	if !strings.Contains(res.errOut, "relay stopped: 22 event(s) published") {
		t.Fatalf("relay stderr:\n%s", res.errOut)
	}
	r = run(t, b.master, "", "outbox", "status")
	if r.ok(t); r.out != "outbox: empty\n" {
		t.Fatalf("outbox status: %q", r.out)
	}
}

func TestSyncFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	down := &cli.Options{Setup: func(ctx context.Context, req *cli.SetupRequest) (*cli.App, error) {
		app, err := b.master.Setup(ctx, req)
		if err != nil {
			return nil, err
		}
		app.Secrets = []string{"hunter2"}
		app.OpenTransport = func(context.Context) (*cli.Transport, error) {
			return nil, errors.New("dial amqp://guest:hunter2@127.0.0.1:1/: connection refused")
		}
		return app, nil
	}}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no cqrs-id", []string{"sync"}, cli.ExitUsage, "--cqrs-id is required"},
		{"unknown model", []string{"sync", "-c", "nope"}, cli.ExitUsage, `--cqrs-id "nope" is not a master model here (registered: djpeer_basic)`},
		{"filter not JSON", []string{"sync", "-c", "djpeer_basic", "-f", "{id: 1}"}, cli.ExitUsage, "--filter is not JSON"},
		{"filter not an object", []string{"sync", "-c", "djpeer_basic", "-f", "[1]"}, cli.ExitUsage, "--filter must be a JSON object"},
		{"filter on no column", []string{"sync", "-c", "djpeer_basic", "-f", `{"nope__in": [1]}`, "--dry-run"}, cli.ExitUsage, "bad filter"},
		{"bad queue", []string{"sync", "-c", "djpeer_basic", "-q", "a.b"}, cli.ExitUsage, `--queue "a.b" is not a queue name`},
		{"bad timeout", []string{"sync", "-c", "djpeer_basic", "--timeout", "0s"}, cli.ExitUsage, "--timeout must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			run(t, b.master, "", c.args...).fails(t, c.code, c.want)
		})
	}
	t.Run("broker down", func(t *testing.T) {
		t.Parallel()
		r := run(t, down, "", "sync", "-c", "djpeer_basic")
		r.fails(t, cli.ExitFailure, "sync: broker unreachable: dial amqp://guest:xxxxx@127.0.0.1:1/")
		if strings.Contains(r.errOut, "hunter2") {
			t.Fatalf("the password was printed: %q", r.errOut)
		}
		// Nothing was enqueued: the broker is checked first.
		if n := count(t, b.masterDB, "SELECT COUNT(*) FROM cqrs_outbox"); n != 0 {
			t.Fatalf("%d events enqueued with the broker down", n)
		}
	})
}

// TestSyncChecksSchema: sync on a database without the outbox is a
// configuration error (exit 2) that says to migrate, found before the
// command connects to the broker or reads a row.
func TestSyncChecksSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	if _, err := b.masterDB.ExecContext(t.Context(), "DROP TABLE cqrs_outbox"); err != nil {
		t.Fatal(err)
	}
	run(t, b.master, "", "sync", "-c", "djpeer_basic", "--no-wait").fails(t, cli.ExitUsage,
		"sync: table cqrs_outbox does not exist: run cqrsync migrate")
}

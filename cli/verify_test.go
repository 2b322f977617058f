package cli_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/cli"
)

// TestVerifyCommands runs verify-serve on the master and verify on the
// replica: hand edits are listed, --repair sends them back through the
// relay and the consumer, and verify then lists nothing.
func TestVerifyCommands(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	run(t, b.replica, b.vector(t, "cmd_cqrs_bulk_dump_basic.dump"), "bulk-load", "-i", "-").ok(t)

	srv := start(t, b.master, "verify-serve", "--listen", "127.0.0.1:0")
	srv.waitFor(t, "listening on http://")
	url := regexp.MustCompile(`http://\S+`).FindString(srv.errOut.String())

	r := run(t, b.replica, "", "verify", "-c", "djpeer_basic", "--master-url", url, "--bucket", "8", "--narrow", "3")
	r.ok(t)
	if r.out != "" || !strings.Contains(r.errOut, "djpeer_basic: 0 differ, 0 missing, 0 extra") {
		t.Fatalf("verify of a converged replica: stdout %q, stderr %q", r.out, r.errOut)
	}
	for _, q := range []string{
		`UPDATE djpeer_basic SET char_field = 'edited by hand' WHERE id = 3`,
		`DELETE FROM djpeer_basic WHERE id = 7`,
		`INSERT INTO djpeer_basic (id, cqrs_revision, cqrs_updated, int_field, char_field, bool_field) VALUES (999999, 0, '2024-01-01 00:00:00+00:00', 0, 'replica-only', 0)`,
	} {
		if _, err := b.replicaDB.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	const drift = "differ 3 char_field\nmissing 7\nextra 999999\n"
	r = run(t, b.replica, "", "verify", "-c", "djpeer_basic", "--master-url", url, "--bucket", "8", "--narrow", "3")
	r.ok(t)
	if r.out != drift {
		t.Fatalf("verify: stdout %q, want %q; stderr %q", r.out, drift, r.errOut)
	}
	r = run(t, b.replica, "", "verify", "-c", "djpeer_basic", "--master-url", url, "--repair")
	r.ok(t)
	if r.out != drift || !strings.Contains(r.errOut, "repaired: 2 SYNC(s) sent to the outbox for queue djpeer_replica, 1 extra row(s) deleted") {
		t.Fatalf("verify --repair: stdout %q, stderr %q", r.out, r.errOut)
	}
	// The consumer first: the memory broker drops what no queue is bound for.
	consume := start(t, b.replica, "consume")
	consume.waitFor(t, "consuming queue djpeer_replica")
	relay := start(t, b.master, "relay")
	eventually(t, "verify finds nothing after the repair", func() bool {
		r := run(t, b.replica, "", "verify", "-c", "djpeer_basic", "--master-url", url)
		return r.code == cli.ExitOK && r.out == ""
	})
	consume.stop()
	relay.stop()
	if res := srv.stop(); res.code != cli.ExitOK {
		t.Fatalf("verify-serve ended with %d: %s", res.code, res.errOut)
	}
}

func TestVerifyUsage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run(t, b.replica, "", "verify", "-c", "djpeer_basic").fails(t, cli.ExitUsage, "--master-url")
	run(t, b.replica, "", "verify", "--master-url", "http://x").fails(t, cli.ExitUsage, "--cqrs-id is required")
	run(t, b.replica, "", "verify", "-c", "djpeer_basic", "--master-url", "http://x", "--bucket", "4", "--narrow", "8").fails(t, cli.ExitUsage, "--narrow")
	run(t, b.master, "", "verify-serve").fails(t, cli.ExitUsage, "--listen is required")
	run(t, b.replica, "", "verify", "-c", "djpeer_basic", "--master-url", "http://127.0.0.1:1/cqrsync/verify").fails(t, cli.ExitFailure, "verify-serve")
}

// TestConsumeVerifyEvery: consume's background drift check repairs a row
// edited by hand on the replica, with no operator.
func TestConsumeVerifyEvery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	run(t, b.replica, b.vector(t, "cmd_cqrs_bulk_dump_basic.dump"), "bulk-load", "-i", "-").ok(t)
	srv := start(t, b.master, "verify-serve", "--listen", "127.0.0.1:0")
	srv.waitFor(t, "listening on http://")
	url := regexp.MustCompile(`http://\S+`).FindString(srv.errOut.String())
	if _, err := b.replicaDB.ExecContext(t.Context(), `UPDATE djpeer_basic SET char_field = 'edited by hand' WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	// The settings come from the App (YAML replica.verify_every and
	// verify_master_url), as the flags' defaults.
	withVerify := &cli.Options{Setup: func(ctx context.Context, req *cli.SetupRequest) (*cli.App, error) {
		app, err := b.replica.Setup(ctx, req)
		if app != nil {
			app.Verify = cli.VerifySettings{Every: 20 * time.Millisecond, MasterURL: url}
		}
		return app, err
	}}
	consume := start(t, withVerify, "consume")
	consume.waitFor(t, "consuming queue djpeer_replica")
	relay := start(t, b.master, "relay")
	eventually(t, "the background drift check repairs row 3", func() bool {
		var v string
		err := b.replicaDB.QueryRowContext(t.Context(), `SELECT char_field FROM djpeer_basic WHERE id = 3`).Scan(&v)
		return err == nil && v != "edited by hand"
	})
	relay.stop()
	if res := consume.stop(); res.code != cli.ExitOK {
		t.Fatalf("consume ended with %d: %s", res.code, res.errOut)
	}
	srv.stop()
	run(t, b.replica, "", "consume", "--verify-every", "1h").fails(t, cli.ExitUsage, "--verify-master-url")
	run(t, b.replica, "", "consume", "--verify-master-url", url).fails(t, cli.ExitUsage, "--verify-every")
}

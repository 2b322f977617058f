package cli_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// TestWait: a token collected by a master's capture is waited for with
// `cqrsync wait`, which exits 0 once the running consume has applied it,
// 1 when the timeout runs out first and 2 for a token it cannot read.
func TestWait(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if r := run(t, b.replica, "", "wait", "djpeer_basic.0.1", "--timeout", "50ms"); r.code != cli.ExitFailure ||
		!strings.Contains(r.errOut, "djpeer_basic.0.1 is not applied on this replica after 50ms") {
		t.Fatalf("wait before any event: exit %d, stderr %q", r.code, r.errOut)
	}
	consumer := start(t, b.replica, "consume")
	consumer.waitFor(t, "consuming queue djpeer_replica")
	relay := start(t, b.master, "relay", "--poll-interval", "1ms")
	relay.waitFor(t, "relaying the outbox")

	master, err := cqrsync.NewMaster(databasesql.New(b.masterDB, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: basicTypes}); err != nil {
		t.Fatal(err)
	}
	ctx, toks := cqrsync.CollectTokens(t.Context())
	if err := cqrsync.RunTx(ctx, b.masterDB, master, func(tx *sql.Tx) error {
		return master.Insert(ctx, tx, "djpeer_basic", map[string]any{"id": 5, "char_field": "five"})
	}); err != nil {
		t.Fatal(err)
	}
	tok := toks.Strings()[0]
	if tok != "djpeer_basic.0.5" {
		t.Fatalf("token %q", tok)
	}
	r := run(t, b.replica, "", "wait", tok, "--timeout", waitTimeout.String())
	r.ok(t)
	if r.out != "applied djpeer_basic.0.5\n" {
		t.Fatalf("wait: stdout %q", r.out)
	}
	var got string
	if err := b.replicaDB.QueryRow("SELECT char_field FROM djpeer_basic WHERE id = 5").Scan(&got); err != nil || got != "five" {
		t.Fatalf("after wait the replica has %q, %v", got, err)
	}

	run(t, b.replica, "", "wait", "djpeer_basic.x.5").fails(t, cli.ExitUsage, "bad token")
	run(t, b.replica, "", "wait", "nope.0.5").fails(t, cli.ExitUsage, `"nope"`)
	run(t, b.replica, "", "wait", tok, "--timeout", "0s").fails(t, cli.ExitUsage, "--timeout")
}
